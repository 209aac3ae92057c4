"""Keap calls per order and per step, counted by the sandbox (the same count Keap's quota would see).

Part 1 runs each step function in turn for typical orders (3 products + shipping + tax, 1 payment,
2 custom fields) and prints the calls of every step. Part 2 imports a generated file through a real Celery
worker and prints calls per order over the whole run. Needs Redis (REDIS_URL, default 127.0.0.1:6379/0).

    python bench/calls_per_order.py [--orders 200]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = f"bench-{uuid.uuid4().hex[:8]}"
from sandbox.auth import API_KEY as KEY  # noqa: E402

os.environ.update({"KEY_PREFIX": RUN, "LIVE_QUEUE": f"{RUN}.live", "BACKFILL_QUEUE": f"{RUN}.backfill",
                   "KEAP_API_KEY": KEY, "RATE_LIMITS": "off"})

import redis  # noqa: E402

from sandbox.server import Sandbox  # noqa: E402
from worker.keap import ApiKeyAuth, KeapClient  # noqa: E402
from worker.ledger import Ledger  # noqa: E402
from worker.messages import parse_order  # noqa: E402
from worker.steps.base import StepContext  # noqa: E402

STEP_ORDER = ("create_order", "add_items", "record_payment", "set_custom_fields", "create_subscription")
XMLRPC_FORUM_FLOW = {"new customer": 11, "returning customer": 10}  # the forum's XML-RPC recipe


def typical(ext: str, email: str) -> dict:
    return {
        "external_id": ext, "order_time": "2024-03-05T14:22:10Z",
        "customer": {"email": email, "given_name": "Bench", "family_name": "Customer"},
        "items": [
            {"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90", "unit_cost": "7.10"},
            {"sku": "MUG-CLASSIC", "quantity": 1, "unit_price": "12.50"},
            {"sku": "COFFEE-BEANS-1KG", "quantity": 1, "unit_price": "24.00"},
            {"type": "SHIPPING", "name": "UPS Ground", "quantity": 1, "unit_price": "5.00"},
            {"type": "TAX", "name": "Sales tax", "quantity": 1, "unit_price": "3.70"},
        ],
        "payments": [{"amount": "85.00", "method": "Credit Card (Manual)", "external_id": f"ch-{ext}"}],
        "custom_fields": {"Sales Channel": "Shopify", "Fulfillment": "UPS"},
    }


def per_step(sb: Sandbox, ctx: StepContext, order: dict) -> dict[str, int]:
    from worker.tasks import STEPS

    parsed = parse_order(order)
    ctx.ledger.register(parsed.external_id, parsed.model_dump(mode="json"), "live")
    counts = {}
    for step in STEP_ORDER:
        before = sb.stats()["total"]
        STEPS[step](ctx, parsed.external_id)
        counts[step] = sb.stats()["total"] - before
    return counts


def part1(sb: Sandbox, ledger: Ledger) -> None:
    ctx = StepContext(keap=KeapClient(sb.base_url, ApiKeyAuth(KEY)), ledger=ledger)
    rows = [
        ("first order ever (cold caches)", typical(f"{RUN}-1", "first@example.com")),
        ("new customer", typical(f"{RUN}-2", "second@example.com")),
        ("returning customer", typical(f"{RUN}-3", "second@example.com")),
    ]
    print("Part 1: Keap calls per step (typical order: 3 products + shipping + tax, 1 payment, 2 custom fields)")
    print(f"{'scenario':34}" + "".join(f"{s:>20}" for s in STEP_ORDER) + f"{'total':>8}{'budget':>8}{'XML-RPC':>9}")
    for name, order in rows:
        counts = per_step(sb, ctx, order)
        total = sum(counts.values())
        budget = {"new customer": 4, "returning customer": 2}.get(name)
        print(f"{name:34}" + "".join(f"{counts[s]:>20}" for s in STEP_ORDER) + f"{total:>8}"
              + f"{(budget if budget else '-'):>8}{XMLRPC_FORUM_FLOW.get(name, '-'):>9}")
        if budget is not None and total > budget:
            print(f"  OVER BUDGET: {name} took {total} calls, budget {budget}")


def part2(sb: Sandbox, ledger: Ledger, count: int) -> None:
    from celery.contrib.testing.worker import start_worker

    from producers.backfill import Backfill
    from worker.app import app
    from worker.settings import get_settings
    from worker.tasks import context

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.jsonl"
        subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(count),
                        "--seed", "11", "--prefix", f"{RUN}-gen-", "--out", str(path)], check=True)
        os.environ["KEAP_BASE_URL"] = sb.base_url
        get_settings.cache_clear()
        context.cache_clear()
        before = sb.stats()["total"]
        started = time.monotonic()
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                          queues=[f"{RUN}.live", f"{RUN}.backfill"], loglevel="WARNING"):
            with open(os.devnull, "w") as quiet:
                progress = Backfill(ledger, window=100, out=quiet).run(path, wait=True)
        elapsed = time.monotonic() - started
        calls = sb.stats()["total"] - before
    print(f"\nPart 2: {count} generated orders through a real Celery worker (4 threads)")
    print(f"  done {progress.done}, failed {progress.failed}, invalid {progress.invalid}")
    print(f"  Keap calls {calls}, calls/order {calls / max(progress.done, 1):.2f}, "
          f"elapsed {elapsed:.1f}s, {progress.done / elapsed:.1f} orders/s (sandbox limits off)")
    routes = {k: v for k, v in sorted(sb.stats()["requests"].items(), key=lambda kv: -kv[1])}
    print("  calls by route: " + json.dumps(routes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="orders for part 2")
    args = parser.parse_args()
    from worker.settings import get_settings

    client = redis.Redis.from_url(get_settings().redis_url)
    try:
        with Sandbox(port=0, api_key=KEY, limits="off") as sb:
            ledger = Ledger(client, RUN)
            part1(sb, ledger)
            part2(sb, ledger, args.orders)
    finally:
        for key in client.scan_iter(f"*{RUN}*", count=1000):
            client.delete(key)


if __name__ == "__main__":
    main()
