"""Accepted orders per second and latency of `keap-orders serve` (POST /v1/orders) under an async load generator
(httpx), with the server's memory over the run. No worker runs: this measures the front door alone (validate,
register, send); the orders wait in the run's own queue and are deleted afterwards with the run's keys.

  .venv/bin/python bench/http_ingest.py --seconds 120 --concurrency 32 [--workers 2]   # the most it accepts
  .venv/bin/python bench/http_ingest.py --seconds 120 --rate 200 --concurrency 64      # latency at 200 orders/s
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.test_app import serve  # noqa: E402  (starts the process and waits for /healthz)

TOKEN = "bench-token"
LOAD = [os.getloadavg()[0]]  # other work on this machine: the figures depend on it


def order(ext: str) -> dict:
    return {"external_id": ext, "order_time": "2024-03-05T14:22:10Z",
            "customer": {"email": "bench@example.com", "given_name": "Bench"},
            "items": [{"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90"},
                      {"type": "SHIPPING", "name": "Post", "unit_price": "5.00"}],
            "payments": [{"amount": "44.80", "method": "Cash"}]}


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def server_pids(root: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
    return [root, *map(int, found)]


async def load(url: str, seconds: float, concurrency: int, run: str, pids, memory: list,
               rate: float = 0) -> tuple[list, dict]:
    latencies, statuses = [], {}
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def user(n: int, client: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.post(url + "/v1/orders", json=order(f"{run}-{n}-{i}"), headers=headers)
            latencies.append(time.perf_counter() - started)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            i += 1

    async def sample() -> None:
        while time.monotonic() < deadline:
            memory.append(rss_mb(pids))
            await asyncio.sleep(5)

    async def paced(client: httpx.AsyncClient) -> None:
        # Open loop: one POST every 1/rate s whatever the answers, so a slow answer cannot lower the load it meets
        # (as real senders do); the latency of each is its own, queueing included.
        async def one(i: int) -> None:
            started = time.perf_counter()
            answer = await client.post(url + "/v1/orders", json=order(f"{run}-r-{i}"), headers=headers)
            latencies.append(time.perf_counter() - started)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        tasks, start, i = [], time.monotonic(), 0
        while time.monotonic() < deadline:
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        senders = [paced(client)] if rate else [user(n, client) for n in range(concurrency)]
        await asyncio.gather(sample(), *senders)
    return latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes (keap-orders serve --workers)")
    parser.add_argument("--rate", type=float, default=0,
                        help="open loop: POSTs per second whatever the answers (at most --concurrency connections); "
                             "0: --concurrency clients each sending as fast as answers come")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    run = f"bench-http-{uuid.uuid4().hex[:6]}"
    env = {"REDIS_URL": args.redis_url, "KEY_PREFIX": run, "LIVE_QUEUE": f"{run}.live",
           "BACKFILL_QUEUE": f"{run}.backfill", "INGEST_TOKENS": TOKEN, "LOG_FORMAT": "text"}
    process, url = serve(env, "--workers", str(args.workers))
    memory: list[float] = []
    try:
        started = time.monotonic()
        latencies, statuses = asyncio.run(load(url, args.seconds, args.concurrency, run, server_pids(process.pid),
                                               memory, args.rate))
        elapsed = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(10)
        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(f"*{run}*", count=1000):
            client.delete(key)
    accepted = statuses.get(202, 0)
    cut = statistics.quantiles(latencies, n=100)
    load_kind = (f"open loop at {args.rate:g} POSTs/s (up to {args.concurrency} connections)" if args.rate
                 else f"{args.concurrency} concurrent clients")
    print(f"run:            {elapsed:.0f}s, {load_kind}, {args.workers} server process(es), "
          f"no worker; load average before: {LOAD[0]}")
    print(f"answers:        {dict(sorted(statuses.items()))}")
    print(f"accepted:       {accepted / elapsed:.0f} orders/s")
    print(f"latency:        p50 {cut[49] * 1000:.1f} ms, p99 {cut[98] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    print(f"server RSS:     start {memory[0]:.0f} MB, end {memory[-1]:.0f} MB, max {max(memory):.0f} MB "
          f"({len(memory)} samples)")


if __name__ == "__main__":
    main()
