"""`keap-orders quota` and the call estimate behind it (also printed by `backfill --dry-run`)."""
from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from admin.cli import main
from admin.estimate import estimate_file, plan
from tests.conftest import REDIS_URL, SANDBOX_KEY
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_cli import write_jsonl
from worker import context
from worker.keap.quota import RateLimits
from worker.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from generate_orders import generate  # noqa: E402


def test_the_estimate_matches_the_calls_the_worker_makes(keap_sandbox, producer, ctx, ext, tmp_path):
    orders = list(generate(30, 5, f"{ext}-"))
    for order in orders:  # customers of this test only, so none is cached yet; Keap's card holder stays
        if order["customer"]["email"] != "card.holder@example.com":
            order["customer"] = {**order["customer"], "email": f"{ext}-{order['customer']['email']}"}
    path = write_jsonl(tmp_path / "orders.jsonl", orders)
    estimate = estimate_file(path)
    assert estimate.orders == 30 and estimate.invalid == 0

    before = dict(keap_sandbox.stats()["requests"])
    for order in orders:
        producer.enqueue_order(order, "backfill")
    statuses = wait_until_finished(ctx.ledger, [o["external_id"] for o in orders])
    assert set(statuses.values()) == {"done"}
    made = {route: n - before.get(route, 0) for route, n in keap_sandbox.stats()["requests"].items()}
    setup = sum(n for route, n in made.items() if "/products" in route or "/model" in route)
    # Per order the estimate is exact, but for the card holder, whom Keap has already (counted 3: looked up, created,
    # its address patched; made 1: found, or 0: not even looked up when an earlier test left it in the cache).
    assert estimate.per_order - 3 <= sum(made.values()) - setup <= estimate.per_order - 2
    # Calls made once per file: what one worker makes, or fewer when earlier tests warmed the caches; workers
    # that miss the same cold cache at once (here 4 threads) each read it.
    assert setup <= estimate.setup + 4 * 2


def test_quota_shows_each_window_what_keap_said_and_the_days_a_file_needs(key_prefix, tmp_path):
    env = {"KEAP_API_KEY": SANDBOX_KEY, "REDIS_URL": REDIS_URL, "KEY_PREFIX": key_prefix, "RATE_LIMITS": "sak",
           "BACKFILL_QUOTA_SHARE": "0.5"}
    throttle = context.throttle(Settings(**{k.lower(): v for k, v in env.items()}))
    permit = throttle.acquire()
    throttle.observe(RateLimits(throttle_limit=240, throttle_available=200, throttle_used=40,
                                throttle_window_seconds=60, quota_limit=30000, quota_available=25000,
                                quota_used=5000), 200, permit.slot_ms)
    path = write_jsonl(tmp_path / "orders.jsonl", list(generate(50, 3, "q-")))

    result = CliRunner(env=env).invoke(main, ["quota", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "credential key-" in out and "(5/s,240/min,30000/day)" in out
    assert "last 60 s: 40 of 240 calls" in out  # Keap's count won over our one call
    assert "today (UTC): 5,000 of 30,000 calls (live 1, backfill 0 of its 15,000)" in out
    assert "Keap says 200 of 240 calls per 60 s left; 25,000 of 30,000 per day left (0 s ago, HTTP 200)" in out
    assert out.count("Keap says") == 1  # once, not per scope
    assert "account key-" in out and "(10000/min,250000/day)" in out
    estimate = estimate_file(path)
    assert f"50 order(s) in the file, 0 invalid: the 50 valid one(s) ({estimate.customers} distinct customers) need about {estimate.calls} " in out
    assert "the backfill may use 15,000 calls a day (50% of 30,000 per credential); 15,000 of them are left today" in out


def test_days_follow_the_backfill_share_of_the_tightest_daily_quota():
    class Few:
        orders, invalid, customers, calls = 10_000, 0, 4_000, 100_000

    scope = {"kind": "credential", "backfill_allowed": 24_000, "day": {"limit": 30_000, "backfill": 4_000},
             "calls_per_second": 4.0}
    lines = plan(Few(), [scope])
    assert "20,000 of them are left today" in lines[3]
    assert lines[-1] == "about 4 more day(s) after today at the current limits (the quota resets at 00:00 UTC)"


def test_backfill_dry_run_prints_the_same_estimate(ctx, ext, tmp_path, cli_env):
    path = write_jsonl(tmp_path / "orders.jsonl", list(generate(12, 9, f"{ext}-")))
    result = CliRunner(env=cli_env).invoke(main, ["backfill", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"need about {estimate_file(path).calls} Keap calls" in result.output
    # This run's credential has no limit (RATE_LIMITS=off): the account's is the one that counts.
    assert "the backfill may use 200,000 calls a day (80% of 250,000 per account)" in result.output
