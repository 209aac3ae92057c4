"""The live lane end to end over HTTP: while a backfill saturates a 10/s limit, one order a second is posted to
`keap-orders serve` (POST /v1/orders); the time from the POST to done in the ledger is measured (p50, p95).

The sandbox, the worker commands and the backfill are bench/throttle.py's (its `throttle` mode: the shared limit);
only the live orders differ: they come over HTTP instead of `enqueue_order`. Needs Redis (REDIS_URL).

    python bench/http_live.py [--rate 10] [--orders 600] [--seconds 90] [--live-workers 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import throttle  # noqa: E402  (also puts the repository and examples/ on sys.path)
from generate_orders import generate  # noqa: E402
from admin.demo import run_env, worker_process  # noqa: E402
from tests.web.test_app import serve  # noqa: E402
from worker.ledger import ACTIVE  # noqa: E402

TOKEN = "bench-live-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10)
    parser.add_argument("--orders", type=int, default=600, help="backfill orders (enough to outlast --seconds)")
    parser.add_argument("--seconds", type=float, default=90, help="how long live orders are posted")
    parser.add_argument("--live-workers", type=int, default=2,
                        help="processes of the live-only worker command (the Procfile's `live`; 0: none)")
    args = parser.parse_args()
    from producers.enqueue import Producer
    from producers.sources import read_file
    from worker.app import app, configure
    from worker.settings import Settings

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    run = f"bench-hlive-{uuid.uuid4().hex[:6]}"
    limits = f"{args.rate}/s,{args.rate * 60}/min"
    with tempfile.TemporaryDirectory() as tmp, throttle.sandbox(limits) as base_url, ExitStack() as stack:
        path = Path(tmp) / "backfill.jsonl"
        subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(args.orders),
                        "--seed", "11", "--prefix", f"{run}-", "--out", str(path)], check=True)
        env = run_env(base_url, redis_url, run, RATE_LIMITS=limits, ACCOUNT_RATE_LIMITS="10000/min,250000/day",
                      MAX_RETRIES="20", INGEST_TOKENS=TOKEN)
        settings = Settings(**{k.lower(): v for k, v in env.items()})
        configure(settings)
        producer = Producer(settings)
        stack.callback(throttle._cleanup, redis_url, run)
        stack.enter_context(throttle.workers(env, run, throttle.LOG))
        if args.live_workers:
            # As the Procfile runs it: a worker command on the live queue alone, so a live step never waits for a
            # process that backfill steps hold.
            stack.enter_context(worker_process(env, queues=env["LIVE_QUEUE"], name=f"{run}-live", pool="prefork",
                                               concurrency=args.live_workers, beat=False,
                                               errors=stack.enter_context(open(throttle.LOG, "a"))))
        throttle.wait_ready(app, run)
        service, url = serve(env)
        stack.callback(service.terminate)

        stop = threading.Event()

        def backfill() -> None:
            in_flight: set[str] = set()
            for row in read_file(path):
                while len(in_flight) >= throttle.WINDOW and not stop.is_set():
                    throttle._settle(producer.ledger, in_flight, [])
                    time.sleep(0.2)
                if stop.is_set():
                    return
                producer.enqueue_order(row.order, "backfill")
                in_flight.add(row.order.external_id)

        threading.Thread(target=backfill, daemon=True).start()
        time.sleep(10)  # the backfill fills the limit first
        posted: dict[str, float] = {}
        done: dict[str, float] = {}
        answers = []
        session = requests.Session()
        for order in generate(int(args.seconds), 23, f"{run}-live-"):
            sent = time.monotonic()
            answer = session.post(url + "/v1/orders", json=order, headers={"Authorization": f"Bearer {TOKEN}"},
                                  timeout=10)
            answers.append(answer.status_code)
            posted[order["external_id"]] = sent
            _collect(producer.ledger, posted, done)
            while time.monotonic() < sent + 1:
                _collect(producer.ledger, posted, done)
                time.sleep(0.02)
        deadline = time.monotonic() + 60
        while len(done) < len(posted) and time.monotonic() < deadline:
            _collect(producer.ledger, posted, done)
            time.sleep(0.02)
        stop.set()
        stats = throttle.sandbox_stats(base_url)
    times = sorted(done[e] - posted[e] for e in done if done[e] == done[e])
    cut = statistics.quantiles(times, n=20) if len(times) > 1 else [float("nan")] * 19
    live = f" + a live-only command x {args.live_workers}" if args.live_workers else ""
    print(f"limit {limits}; {throttle.COMMANDS} worker commands x {throttle.PROCESSES} prefork processes{live}; "
          f"sandbox latency 50-150 ms ({throttle.PRIORITY[0]} priority); backfill window {throttle.WINDOW}")
    print(f"live orders posted: {len(posted)} (HTTP {sorted(set(answers))}), done: {len(times)}")
    print(f"POST -> done:       p50 {statistics.median(times):.2f} s, p95 {cut[18]:.2f} s, max {max(times):.2f} s")
    print(f"Keap calls:         {stats['total']} ({stats['throttled_429']} answered 429)")


def _collect(ledger, posted: dict[str, float], done: dict[str, float]) -> None:
    pending = [e for e in posted if e not in done]
    for ext, status in (ledger.statuses(pending) if pending else {}).items():
        if status not in ACTIVE and status is not None:
            done[ext] = time.monotonic() if status == "done" else float("nan")


if __name__ == "__main__":
    main()
