"""Keap slower than the client's timeout, with the default settings: every write still lands exactly once.

Keap (the sandbox) takes --latency seconds (default 35) to apply each order, payment and subscription write,
longer than the worker's 30 s read timeout, so every first write ends with an unknown outcome and lands after the
worker gave up. A handful of orders go through `keap-orders backfill --wait` with a worker and the keeper
(default exactly-once settings: 120 s settle time, 3 lookups), then `keap-orders verify`. Prints the time, what
Keap holds per order, and verify's verdict. Takes several minutes; loopback only.

    python bench/slow_writes.py [--orders 5] [--latency 35]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from admin.demo import run_env, worker_answers, worker_process  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from worker.app import configure  # noqa: E402
from worker.settings import Settings  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SLOW = ["POST /rest/v2/orders", "POST /rest/v2/orders/{order_id}/payments", "POST /rest/v2/subscriptions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--latency", type=float, default=35.0)
    args = parser.parse_args()
    run_id = f"slow-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sb = stack.enter_context(Sandbox(port=0, limits="off", faults={"latency_ms": args.latency * 1000,
                                                                        "routes": SLOW}))
        env = run_env(sb.base_url, REDIS_URL, run_id, RATE_LIMITS="off")
        configure(Settings(**{name.lower(): value for name, value in env.items()}))
        stack.callback(lambda: [redis.Redis.from_url(REDIS_URL).delete(k) for k in
                                redis.Redis.from_url(REDIS_URL).scan_iter(f"*{run_id}*", count=1000)])
        orders = [{"external_id": f"{run_id}-{i}", "order_time": "2025-05-01T10:00:00Z",
                   "customer": {"email": f"{run_id}-{i}@example.com"},
                   "items": [{"sku": "MUG-CLASSIC", "quantity": 2, "unit_price": "12.50"}],
                   "payments": [{"amount": "25.00", "method": "Check"}],
                   "subscriptions": [{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY"}]} for i in range(args.orders)]
        path = Path(tmp) / "orders.jsonl"
        path.write_text("".join(json.dumps(o) + "\n" for o in orders))
        worker = stack.enter_context(worker_process(env, name=run_id, concurrency=max(4, args.orders)))
        assert worker_answers(worker), "the worker did not start"
        cli = [sys.executable, "-m", "admin.cli"]
        started = time.monotonic()
        backfill = subprocess.run([*cli, "backfill", str(path), "--wait"], env={**os.environ, **env},
                                  capture_output=True, text=True)
        elapsed = time.monotonic() - started
        sb.set_faults()
        verify = subprocess.run([*cli, "verify", str(path)], env={**os.environ, **env}, capture_output=True, text=True)
        print(f"latency {args.latency:g}s on {', '.join(SLOW)} (client read timeout 30 s, settle 120 s, 3 lookups)")
        print(backfill.stdout.strip())
        print(f"backfill --wait exit code {backfill.returncode} after {elapsed:.0f}s")
        with sb.store.lock:
            for order in orders:
                ext = order["external_id"]
                kept = [o for o in sb.store.orders.values() if ext in o["custom_fields"].values()]
                subs = [s for s in sb.store.subscriptions.values() if ext in s["custom_fields"].values()]
                print(f"  {ext}: Keap orders {len(kept)}, payments {sum(len(o['payments']) for o in kept)}, "
                      f"subscriptions {len(subs)}")
        print(verify.stdout.strip().splitlines()[-1] if verify.stdout.strip() else verify.stderr[-500:])
        print(f"writes the sandbox applied: {sum(v for k, v in sb.stats()['requests'].items() if k.startswith('POST'))}")
        sys.exit(backfill.returncode or verify.returncode)


if __name__ == "__main__":
    main()
