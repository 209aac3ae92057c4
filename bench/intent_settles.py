"""The write path under the rate limit: does any order settle without a lost answer, and how close to the limit does
a backfill run — with workers stopped (SIGSTOP) for a minute at a time?

Default run: the default path (an API key: the `sak` profile, 240 calls/min) against a sandbox with Keap's `sak`
limits, answering in 50–150 ms; a backfill of N generated orders through 2 `celery worker` commands (4 threads each)
and the keeper. Prints settles and their causes (a settle needs an intent: a write whose answer was lost),
calls per order, and the time against the floor (calls ÷ limit). With --freeze: a throttled backfill (--rate calls/s)
with a short settle time, 3 worker commands, and one of them stopped for --freeze seconds at a random moment,
again and again, until the backfill is done; prints the time against the floor and the duplicates in Keap.
Needs Redis (REDIS_URL, default 127.0.0.1:6379/0); loopback only.

    python bench/intent_settles.py [--orders 120]
    python bench/intent_settles.py --freeze 60 [--orders 80] [--rate 2]
"""
from __future__ import annotations

import argparse
import io
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from admin.demo import run_env, worker_answers, worker_process  # noqa: E402
from chaos import REDIS_URL, _cleanup, _duplicates  # noqa: E402
from producers.backfill import Backfill  # noqa: E402
from producers.enqueue import Producer  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from worker.app import configure  # noqa: E402
from worker.settings import Settings  # noqa: E402

_SETTLE = re.compile(r"order (\S+): settling: (\S+) was sent")
_LOST = re.compile(r"order (\S+): \S+ failed \(KeapOutcomeUnknown\)")


def run(orders: int, freeze: float, rate: float, seed: int) -> dict:
    run_id = f"settles-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sb = stack.enter_context(Sandbox(port=0, limits="off" if freeze else "sak", latency_ms=[50, 150], seed=seed))
        limits = {"RATE_LIMITS": f"{rate:g}/s", "SETTLE_SECONDS": "10"} if freeze else {}  # else: the key's sak
        env = run_env(sb.base_url, REDIS_URL, run_id, **limits)
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        configure(settings)
        stack.callback(_cleanup, run_id)
        path = Path(tmp) / "orders.jsonl"
        subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(orders),
                        "--seed", str(seed), "--prefix", f"{run_id}-", "--out", str(path)], check=True)
        log_path = Path(tmp) / "workers.log"
        log = stack.enter_context(open(log_path, "w"))
        queues = f"{settings.live_queue},{settings.backfill_queue}"
        keeper = stack.enter_context(worker_process(env, queues=settings.keeper_queue, name=f"{run_id}-keeper",
                                                    concurrency=1, beat=True, errors=log, loglevel="INFO"))
        workers = [stack.enter_context(worker_process(env, queues=queues, name=f"{run_id}-w{i}", concurrency=4,
                                                      beat=False, errors=log, loglevel="INFO"))
                   for i in range(3 if freeze else 2)]
        assert worker_answers(keeper) and all(worker_answers(w) for w in workers), "workers did not start"

        started = time.monotonic()
        job = Backfill(Producer(settings), window=100, out=io.StringIO())
        thread = threading.Thread(target=lambda: job.run(path, wait=True), daemon=True)
        thread.start()
        stops = 0
        while thread.is_alive() and time.monotonic() - started < 1800:
            if not freeze:
                thread.join(1)
                continue
            thread.join(random.uniform(5, 15))
            if thread.is_alive():
                stopped = random.choice(workers)
                os.kill(stopped.pid, signal.SIGSTOP)
                stops += 1
                thread.join(freeze)
                os.kill(stopped.pid, signal.SIGCONT)
        elapsed = time.monotonic() - started
        log.flush()
        text = log_path.read_text()
        stats = sb.stats()
        return {"elapsed": elapsed, "calls": stats["total"], "throttled": stats["throttled_429"],
                "max_second": stats["max_per_second"].get("api-key", 0),
                "max_minute": stats["max_per_minute"].get("api-key", 0),
                "settles": {(ext, what) for ext, what in _SETTLE.findall(text)}, "lost": set(_LOST.findall(text)),
                "stops": stops, "duplicates": _duplicates(sb, path), "finished": not thread.is_alive(),
                "limit": rate if freeze else 4.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None, help="120, or 80 with --freeze")
    parser.add_argument("--freeze", type=float, default=0, help="stop a worker this many seconds at a time")
    parser.add_argument("--rate", type=float, default=2.0, help="calls/s of the throttled run (--freeze)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    orders = args.orders or (80 if args.freeze else 120)
    f = run(orders, args.freeze, args.rate, args.seed)
    floor = f["calls"] / f["limit"]
    ratio = f["elapsed"] / floor
    print(f"orders: {orders}; Keap calls: {f['calls']} ({f['calls'] / orders:.2f} per order), 429 answers "
          f"{f['throttled']}, busiest second {f['max_second']}, busiest minute {f['max_minute']}")
    print(f"time: {f['elapsed']:.0f}s; floor (calls / {f['limit']:g} per s): {floor:.0f}s; ratio {ratio:.2f}"
          + (f"; workers stopped {f['stops']} times for {args.freeze:g}s" if args.freeze else ""))
    # A settle's cause: the write's answer was lost (Keap's side), or its worker stopped before recording it.
    causes = Counter(("lost answer" if ext in f["lost"] else "stopped worker" if args.freeze else "NO CAUSE")
                     + f" ({what.split(':')[0]})" for ext, what in f["settles"])
    unexplained = sum(n for cause, n in causes.items() if cause.startswith("NO CAUSE"))
    print(f"orders with a lost answer: {len(f['lost'])}; settles (order, write): {len(f['settles'])} "
          f"{dict(causes)}")
    print(f"duplicates in Keap: {len(f['duplicates'])}")
    for line in f["duplicates"][:10]:
        print(f"  {line}")
    bound = 4.0 if args.freeze else 1.15
    ok = f["finished"] and not f["duplicates"] and ratio <= bound and not unexplained
    print(f"within {bound:g}x the floor, no duplicate{'' if args.freeze else ', no settle without a lost answer'}: "
          f"{'OK' if ok else 'NOT OK'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
