"""Keap calls per order and per step, counted by the sandbox (the same count Keap's quota would see).

Part 1 runs each step function in turn for typical orders (3 products + shipping + tax, 1 payment,
2 custom fields) and prints the calls of every step, after `doctor --probe` (as an operator runs it before a
backfill) and, for a new customer, without it. Part 2 imports a generated file through a real Celery
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
from sandbox.server import Sandbox  # noqa: E402
from worker import context, pipeline  # noqa: E402
from worker.contract import parse_order  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.steps import readings  # noqa: E402
from worker.steps.base import StepContext  # noqa: E402

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


def located(order: dict) -> dict:
    order["customer"].update(phone="+1 555 0100", billing_address={
        "line1": "12 Oak St", "locality": "Austin", "region": "TX", "postal_code": "78701", "country_code": "USA"})
    return order


def per_step(sb: Sandbox, ctx: StepContext, order: dict) -> dict[str, int]:
    parsed = parse_order(order)
    ctx.ledger.register(parsed.external_id, parsed.model_dump(mode="json"), "live", first_step=pipeline.FIRST)
    counts = {}
    for step in pipeline.STEPS:
        before = sb.stats()["total"]
        step.run(ctx, parsed.external_id)
        counts[step.name] = sb.stats()["total"] - before
    return counts


def part1(sb: Sandbox, ctx: StepContext) -> None:
    from admin.doctor import Report
    from admin.probe import run as probe

    report = Report()
    before = sb.stats()["total"]
    found = probe(ctx, report)
    print(f"doctor --probe: {sb.stats()['total'] - before} Keap calls, once; email search {found['email_search']}")
    rows = [
        ("first order ever (cold caches)", typical(f"{RUN}-1", "first@example.com")),
        ("new customer", typical(f"{RUN}-2", "second@example.com")),
        ("returning customer", typical(f"{RUN}-3", "second@example.com")),
        ("new customer with address + phone", located(typical(f"{RUN}-4", "third@example.com"))),
        ("the same, not probed", located(typical(f"{RUN}-5", "fourth@example.com"))),
    ]
    print("Part 1: Keap calls per step (typical order: 3 products + shipping + tax, 1 payment, 2 custom fields)")
    print(f"{'scenario':34}" + "".join(f"{s:>20}" for s in pipeline.STEP_NAMES) + f"{'total':>8}{'budget':>8}{'XML-RPC':>9}")
    for name, order in rows:
        if name.endswith("not probed"):  # the safe path: lists follow in a PATCH after Keap answered 201
            readings.store(ctx.ledger, dict.fromkeys(readings.VALUES))
        counts = per_step(sb, ctx, order)
        total = sum(counts.values())
        budget = {"new customer": 4, "returning customer": 2, "new customer with address + phone": 4,
                  "the same, not probed": 5}.get(name)
        print(f"{name:34}" + "".join(f"{counts[s]:>20}" for s in pipeline.STEP_NAMES) + f"{total:>8}"
              + f"{(budget if budget else '-'):>8}{XMLRPC_FORUM_FLOW.get(name, '-'):>9}")
        if budget is not None and total > budget:
            print(f"  OVER BUDGET: {name} took {total} calls, budget {budget}")


def part2(sb: Sandbox, settings: Settings, count: int) -> None:
    from celery.contrib.testing.worker import start_worker

    from producers.backfill import Backfill
    from producers.enqueue import Producer
    from worker.app import app, configure

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.jsonl"
        subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(count),
                        "--seed", "11", "--prefix", f"{RUN}-gen-", "--out", str(path)], check=True)
        configure(settings)
        context.install(settings)
        before = sb.stats()["total"]
        started = time.monotonic()
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                          queues=[settings.live_queue, settings.backfill_queue], loglevel="WARNING"):
            with open(os.devnull, "w") as quiet:
                progress = Backfill(Producer(settings), window=100, out=quiet).run(path, wait=True)
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
    parser.add_argument("--no-probe", action="store_true", help="part 2 without `doctor --probe` (the safe paths)")
    args = parser.parse_args()
    client = None
    try:
        with Sandbox(port=0, api_key=KEY, limits="off") as sb:
            settings = Settings(key_prefix=RUN, live_queue=f"{RUN}.live", backfill_queue=f"{RUN}.backfill",
                                keap_api_key=KEY, rate_limits="off", keap_base_url=sb.base_url)
            ctx = context.build_context(settings)
            client = ctx.ledger.redis
            part1(sb, ctx)
            if not args.no_probe:
                from admin.doctor import Report
                from admin.probe import run as probe

                probe(ctx, Report())  # part 2 as after `doctor --probe`
            print("\nPart 2 " + ("without the probe" if args.no_probe else "after `doctor --probe`"))
            part2(sb, settings, args.orders)
    finally:
        for key in client.scan_iter(f"*{RUN}*", count=1000) if client else ():
            client.delete(key)


if __name__ == "__main__":
    main()
