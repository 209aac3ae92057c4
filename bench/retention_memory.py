"""Redis bytes per done order before and after retention compacts it (MEMORY USAGE of each order's hash), and what
the done index costs per order.

Imports typical orders (a customer with addresses, 3 products + shipping + tax, a payment, 2 custom fields; every
fourth with a subscription) through a real Celery worker against the sandbox, then compacts them with the same call
the keeper and `keap-orders gc` make. Needs Redis (REDIS_URL, default 127.0.0.1:6379/0).

    python bench/retention_memory.py [--orders 200]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calls_per_order import typical as typical_order  # noqa: E402 (bench/ is the script's own folder)
from admin.demo import _cleanup, run_env, worker_answers, worker_process  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402


def typical(ext: str, n: int) -> dict:
    """The typical order of calls_per_order.py, with the customer's phone and addresses; every fourth subscribes."""
    order = typical_order(ext, f"customer-{n}@example.com")
    address = {"line1": f"{100 + n} Oak Street", "locality": "Austin", "region": "TX", "postal_code": "78701",
               "country_code": "USA"}
    order["customer"].update(phone="+1 512 555 0100", billing_address=address, shipping_address=address)
    if n % 4 == 0:
        order["subscriptions"] = [{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY"}]
    return order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    from producers.enqueue import Producer
    from worker.app import configure
    from worker.settings import Settings

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    with Sandbox(port=0, limits="off") as sb:
        env = run_env(sb.base_url, redis_url, run_id, RATE_LIMITS="off")
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        configure(settings)
        producer = Producer(settings)
        ledger = producer.ledger
        try:
            with worker_process(env, concurrency=4) as worker:
                if not worker_answers(worker):
                    print("the worker did not start")
                    return 1
                ids = [f"{run_id}-{n}" for n in range(args.orders)]
                for n, ext in enumerate(ids):
                    producer.enqueue_order(typical(ext, n), "backfill")
                deadline = time.monotonic() + 600
                while set(ledger.statuses(ids).values()) != {"done"}:
                    if time.monotonic() > deadline:
                        print(f"not done after 600 s: {ledger.statuses(ids)}")
                        return 1
                    time.sleep(0.5)
            before = [ledger.redis.memory_usage(ledger.order_key(ext), samples=0) for ext in ids]
            index = ledger.redis.memory_usage(f"{settings.key_prefix}:done", samples=0)
            looked, compacted = ledger.compact_done(0, limit=len(ids))
            after = [ledger.redis.memory_usage(ledger.order_key(ext), samples=0) for ext in ids]
            fields = len(ledger.redis.hkeys(ledger.order_key(ids[0])))
        finally:
            _cleanup(redis_url, run_id)
    print(f"orders:                 {len(ids)} done, {compacted} compacted (of {looked} due)")
    print(f"bytes per done order:   {sum(before) / len(before):.0f} before, {sum(after) / len(after):.0f} after "
          f"compaction ({100 * (1 - sum(after) / sum(before)):.0f}% less; {fields} fields left in the first)")
    print(f"done index per order:   {index / len(ids):.0f} bytes until it is compacted (then removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
