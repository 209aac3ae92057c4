"""The shared rate limit against a real Redis: pacing across processes, Keap's headers, 429 pauses, the account
window, the lanes' shares of the day and the daily reset (Redis time replaced by an explicit `now` where a test
needs a given moment)."""
from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timezone

import pytest
import redis as redis_lib

from tests.conftest import REDIS_URL
from worker.keap.quota import RateLimits
from worker.throttle import LANE, QuotaWait, Scope, Throttle, parse_limits

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc).timestamp() * 1000  # a fixed Redis time, in ms
MIDNIGHT = datetime(2026, 11, 28, tzinfo=timezone.utc).timestamp() * 1000


def make(client, prefix: str, credential: str = "5/s,240/min,30000/day", account: str = "off", *,
         name: str = "a", **kwargs) -> Throttle:
    """A throttle like keap_client's: credential `name` on account `acct` of the test's own key prefix."""
    kwargs.setdefault("send_margin_ms", 20.0)
    return Throttle(client, [Scope("credential", f"{prefix}:cred:{name}", tuple(parse_limits(credential))),
                             Scope("account", f"{prefix}:acct", tuple(parse_limits(account)))], **kwargs)


def headers(**values) -> RateLimits:
    """RateLimits as Keap's answer headers would give them, e.g. throttle_used=3."""
    return RateLimits(**values)


def test_slots_are_evenly_spaced_and_live_calls_reserve_ahead_of_the_backfill(redis_client, key_prefix):
    # 10/s with a 20 ms margin: a slot every 102 ms, so 10 sends always span more than a second.
    throttle = make(redis_client, key_prefix, "10/s,600/min")
    live = [throttle.reserve("live", NOW) for _ in range(5)]
    assert [r.slot_ms - NOW for r in live] == pytest.approx([0, 102, 204, 306, 408])
    # The backfill takes a slot only when it is due (within 10 ms), so a live call is never queued behind more
    # than the slot in progress; the backfill is told when to come back instead.
    backfill = throttle.reserve("backfill", NOW)
    assert not backfill.granted and backfill.wait == pytest.approx(0.510)
    assert not throttle.reserve("backfill", NOW + 490).granted
    assert throttle.reserve("backfill", NOW + 500).slot_ms - NOW == pytest.approx(510)
    assert throttle.reserve("live", NOW + 500).slot_ms - NOW == pytest.approx(612)


def _take_slots(prefix: str, seconds: float, queue) -> None:
    throttle = make(redis_lib.Redis.from_url(REDIS_URL), prefix, "20/s,1200/min", "6000/min")
    LANE.set("backfill" if multiprocessing.current_process().name.endswith("1") else "live")
    slots, lateness, stop = [], [], time.time() + seconds
    while time.time() < stop:
        permit = throttle.acquire()
        lateness.append(time.time() - permit.due)
        slots.append(permit.slot_ms)
    queue.put((slots, max(lateness)))


def test_processes_sharing_the_limit_never_exceed_any_window(key_prefix):
    spawn = multiprocessing.get_context("spawn")  # fork would copy the threads other tests left running
    queue = spawn.Queue()
    procs = [spawn.Process(target=_take_slots, args=(key_prefix, 2.0, queue), name=f"taker-{i}") for i in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    slots = sorted(s for taken, _ in results for s in taken)
    assert len(slots) == len(set(slots))  # no slot given twice
    # Keap (and the sandbox) count a call in (t - 1 s, t]: never more than 20 in any such window.
    busiest = max(sum(1 for s in slots if t - 1000 < s <= t) for t in slots)
    assert busiest <= 20
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert min(gaps) >= 51 - 0.01  # (1000 ms + 20 ms margin) / 20
    assert len(slots) >= 0.9 * 2.0 * 1000 / 51  # and the schedule stays full
    assert max(late for _, late in results) < 1.0  # each process slept to its slot, none woke a second late


def test_keaps_count_fills_our_window_after_another_integration_or_lost_counters(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "100/s,50/min", max_block=5)
    first = throttle.reserve("live", NOW)
    # Keap counted 50 calls in its minute although we made 1: someone else uses the key (or Redis lost ours).
    added = throttle.observe(headers(throttle_used=50, throttle_limit=50, throttle_available=0,
                                     throttle_window_seconds=60), 200, first.slot_ms, now_ms=NOW + 100)
    assert added == 49
    # The window is full until those calls leave it: one minute after Keap reported them.
    later = throttle.reserve("live", NOW + 1000)
    assert not later.granted and later.wait == pytest.approx(59.0 + 0.02, abs=0.01)
    # A lower limit Keap reports wins over the configured one.
    assert redis_client.hget(f"{key_prefix}:cred:a:state", "keap_window_limit") == b"50"


def test_keaps_daily_count_wins_and_the_tenant_headers_correct_the_account(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "100/s,6000/min,1000/day", "10000/min,2000/day")
    slot = throttle.reserve("live", NOW).slot_ms
    throttle.observe(headers(quota_used=1000, quota_limit=1000, quota_available=0, tenant_quota_used=1500,
                             tenant_quota_limit=2000, tenant_throttle_used=7, tenant_throttle_limit=10000,
                             tenant_throttle_window_seconds=60), 200, slot, now_ms=NOW + 100)
    credential, account = throttle.snapshot(NOW + 200)
    assert credential["day"]["total"] == 1000 and account["day"]["total"] == 1500
    assert account["window"]["used"] == 7 and credential["window"]["used"] == 1  # the tenant minute is the account's
    denied = throttle.reserve("live", NOW + 200)
    assert not denied.granted and denied.daily
    assert denied.wait == pytest.approx((MIDNIGHT - NOW - 200) / 1000 + 2.0)  # just after the reset


def test_a_429_pauses_every_worker_once(redis_client, key_prefix):
    # Two throttles on the same keys stand for two worker processes.
    a = make(redis_client, key_prefix, "10/s")
    b = make(redis_lib.Redis.from_url(REDIS_URL), key_prefix, "10/s")
    sent = [a.reserve("live", NOW).slot_ms, b.reserve("live", NOW).slot_ms]
    # A spike arrest without headers: everyone stops for two slots (204 ms), not each worker on its own.
    a.observe(None, 429, sent[1], now_ms=NOW + 150)
    assert b.reserve("live", NOW + 160).slot_ms == pytest.approx(NOW + 150 + 204)
    # The other call sent before the pause was decided brings the same news: no second pause.
    b.observe(None, 429, sent[0], now_ms=NOW + 170)
    assert a.reserve("live", NOW + 180).slot_ms == pytest.approx(NOW + 150 + 204 + 102)
    # A 429 for a call sent after it, right after it ended, doubles the pause: 429s that keep coming are a storm.
    a.observe(None, 429, NOW + 354, now_ms=NOW + 500)
    assert b.reserve("live", NOW + 510).slot_ms == pytest.approx(NOW + 500 + 408)


def test_a_429_for_the_daily_quota_parks_the_work_until_keaps_reset(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "10/s,600/min,30000/day", max_block=1)
    slot = throttle.reserve("live").slot_ms
    # Keap announces its reset (here an hour after the next UTC midnight, as if its day were not UTC's).
    reset = datetime.fromtimestamp((time.time() // 86400 + 1) * 86400 + 3600, timezone.utc)
    throttle.observe(headers(quota_limit=30000, quota_available=0, quota_used=30000, quota_resets_at=reset), 429, slot)
    with pytest.raises(QuotaWait) as waited:
        throttle.acquire()
    assert waited.value.daily and waited.value.seconds == pytest.approx(reset.timestamp() - time.time() + 2, abs=5)


def test_two_credentials_of_one_account_share_its_window_and_day(redis_client, key_prefix):
    a = make(redis_client, key_prefix, "100/s", "600/min,10/day", name="key-a")
    b = make(redis_client, key_prefix, "100/s", "600/min,10/day", name="key-b")
    slots = [t.reserve("live", NOW).slot_ms - NOW for t in (a, b, a, b)]
    assert slots == pytest.approx([0, 100.03, 200.07, 300.1], abs=0.01)  # the account's pace: 600/min
    granted = [t.reserve("live", NOW + 5000).granted for t in (a, a, b, b, a, b, a, b)]
    assert granted == [True] * 6 + [False] * 2  # 10 a day for the account, whichever key asks


def test_the_backfill_keeps_to_its_share_of_the_day_and_live_orders_still_go_in(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "1000/s,60000/min,10/day", backfill_share=0.8)
    took = [throttle.reserve("backfill", NOW + i * 10).granted for i in range(10)]
    assert took == [True] * 8 + [False] * 2
    refused = throttle.reserve("backfill", NOW + 200)
    assert refused.daily and refused.wait > 3600
    assert [throttle.reserve("live", NOW + 300 + i).granted for i in range(3)] == [True, True, False]


def test_the_backfill_never_eats_what_live_orders_have_not_used(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "1000/s,60000/min,10/day", backfill_share=0.8)
    slot = throttle.reserve("live", NOW).slot_ms
    # Another integration used 7 of the day: the backfill may still use only what leaves live its 2.
    throttle.observe(headers(quota_used=7, quota_limit=10), 200, slot, now_ms=NOW + 1)
    assert [throttle.reserve("backfill", NOW + 10 + i).granted for i in range(3)] == [True, True, False]
    assert throttle.reserve("live", NOW + 20).granted


def test_the_day_resets_at_utc_midnight(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "1000/s,60000/min,3/day", max_block=5)
    late = MIDNIGHT - 5000
    assert all(throttle.reserve("live", late + i).granted for i in range(3))
    before = throttle.reserve("live", late + 10)
    assert not before.granted and before.daily and before.wait == pytest.approx(5.0 - 0.01 + 2.0)
    # Just after the reset (plus the margin for Keap's clock) the day starts again from zero.
    after = throttle.reserve("live", MIDNIGHT + 2001)
    assert after.granted and redis_client.hget(f"{key_prefix}:cred:a:state", "total") == b"1"
    assert throttle.snapshot(MIDNIGHT + 2002)[0]["day"]["total"] == 1


def test_no_limit_means_no_redis_call_and_no_wait(redis_client, key_prefix):
    throttle = make(redis_client, key_prefix, "off")
    assert not throttle.enabled and throttle.acquire() is None
