"""The throttle's Lua scripts run on their own on the real Redis, loaded as Throttle loads them (now.lua in front),
called with KEYS/ARGV as their headers describe."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from worker import lua

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc).timestamp() * 1000  # a fixed Redis time, in ms
DAY = NOW // 86_400_000


@pytest.fixture
def reserve(redis_client):
    return redis_client.register_script(lua.load("worker.throttle", "reserve"))


@pytest.fixture
def observe(redis_client):
    return redis_client.register_script(lua.load("worker.throttle", "observe"))


def scope_keys(prefix: str) -> list[str]:
    return [f"{prefix}:cred:state", f"{prefix}:cred:window"]


def reserve_args(now: float | str, lane: str = "live", *, horizon: float = 5000, interval: float = 100,
                 limit: int = 600, width: float = 60_000, day_limit: int = 0, member: str = "m1") -> list:
    """One scope: a slot every `interval` ms, `limit` sends in `width` ms, `day_limit` a day; 0.8 for the backfill."""
    return [now, lane, horizon, 0.8, member, 2000, interval, limit, width, day_limit]


def state(client, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


def test_reserve_grants_the_next_slot_and_records_it_in_the_hash_and_the_window(redis_client, reserve, key_prefix):
    h, z = scope_keys(key_prefix)
    assert reserve(keys=[h, z], args=reserve_args(repr(NOW))) == [1, 0, 0, f"{NOW:.3f}".encode(),
                                                                  f"{NOW:.3f}".encode()]
    second = reserve(keys=[h, z], args=reserve_args(repr(NOW), member="m2"))
    assert second[:4] == [1, 100_000, 0, f"{NOW + 100:.3f}".encode()]  # waits one interval, in µs
    assert state(redis_client, h) == {"tat": f"{NOW + 200:.3f}", "day": str(int(DAY)), "total": "2", "live": "2",
                                      "backfill": "0"}
    assert redis_client.zrange(z, 0, -1, withscores=True) == [(b"m1", NOW), (b"m2", NOW + 100)]
    assert 0 < redis_client.pttl(h) <= 2 * 86_400_000


def test_reserve_beyond_the_horizon_takes_nothing_and_says_when(redis_client, reserve, key_prefix):
    h, z = scope_keys(key_prefix)
    reserve(keys=[h, z], args=reserve_args(repr(NOW), interval=1000))
    before = state(redis_client, h)
    refused = reserve(keys=[h, z], args=reserve_args(repr(NOW), "backfill", horizon=500, interval=1000, member="m2"))
    assert refused == [0, 1_000_000, 0, b"", f"{NOW:.3f}".encode()]
    assert state(redis_client, h) == before and redis_client.zcard(z) == 1


def test_reserve_waits_for_the_next_utc_day_when_the_day_is_used_up(redis_client, reserve, key_prefix):
    h, z = scope_keys(key_prefix)
    assert reserve(keys=[h, z], args=reserve_args(repr(NOW), day_limit=1))[0] == 1
    granted, wait_us, daily, slot, _ = reserve(keys=[h, z], args=reserve_args(repr(NOW), day_limit=1, member="m2"))
    midnight = (DAY + 1) * 86_400_000
    assert (granted, daily, slot) == (0, 1, b"") and wait_us == (midnight + 2000 - NOW) * 1000


def test_reserve_without_a_time_runs_on_redis_time(redis_client, reserve, key_prefix):
    seconds, micros = redis_client.time()
    granted, _, _, slot, now = reserve(keys=scope_keys(key_prefix), args=reserve_args(""))
    assert granted == 1 and float(slot) == float(now)
    assert float(now) == pytest.approx(seconds * 1000 + micros / 1000, abs=1000)


def observe_args(now: float, slot: float, *, used="", limit="", width="", day_used="", day_limit="", reset="",
                 pause="", shortest="", daily=0, said="", push=0, ceiling=5250) -> list:
    """One scope; `slot` is the answered call's, the jitter 20 ms, no push unless told."""
    return [repr(now), slot, 20, "keap:x", push, ceiling, used, limit, width, day_used, day_limit, reset, pause,
            shortest, daily, said]


def test_observe_moves_the_schedule_by_a_late_calls_lateness_but_never_past_the_ceiling(redis_client, observe,
                                                                                          key_prefix):
    h, z = scope_keys(key_prefix)
    redis_client.hset(h, "tat", NOW + 1000)
    observe(keys=[h, z], args=observe_args(NOW, NOW - 300, push=200))
    assert float(state(redis_client, h)["tat"]) == NOW + 1200
    # Calls that left together late (a process that stood still) do not add up: the schedule stops at the ceiling.
    for _ in range(5):
        observe(keys=[h, z], args=observe_args(NOW, NOW - 300, push=2000, ceiling=3000))
    assert float(state(redis_client, h)["tat"]) == NOW + 3000


def test_observe_adds_the_calls_keap_counted_beyond_ours_and_keeps_what_it_said(redis_client, observe, key_prefix):
    h, z = scope_keys(key_prefix)
    redis_client.zadd(z, {"ours": NOW})
    added = observe(keys=[h, z], args=observe_args(NOW + 100, NOW, used=5, limit=50, width=60_000,
                                                   said='{"status": 200}'))
    assert added == 4 and redis_client.zcard(z) == 5
    assert redis_client.zscore(z, "keap:x:4") == NOW
    assert state(redis_client, h) == {"said": '{"status": 200}', "said_at": f"{NOW + 100:.0f}",
                                      "keap_window_limit": "50"}


def test_observe_raises_the_days_count_to_keaps(redis_client, observe, key_prefix):
    h, z = scope_keys(key_prefix)
    redis_client.hset(h, mapping={"day": int(DAY), "total": 3})
    observe(keys=[h, z], args=observe_args(NOW + 100, NOW, day_used=7, day_limit=1000))
    assert state(redis_client, h) == {"day": str(int(DAY)), "total": "7", "keap_day_limit": "1000"}
    observe(keys=[h, z], args=observe_args(NOW + 200, NOW, day_used=5))  # a lower count changes nothing
    assert state(redis_client, h)["total"] == "7"


def test_observe_pauses_once_for_the_calls_sent_before_the_pause(redis_client, observe, key_prefix):
    h, z = scope_keys(key_prefix)
    assert observe(keys=[h, z], args=observe_args(NOW + 150, NOW, pause=1000, shortest=200)) == 0
    first = state(redis_client, h)
    # A spike arrest Keap does not time: the shortest pause first (streak 0), not the longest.
    assert (first["pause_until"], first["pause_streak"]) == (f"{NOW + 350:.3f}", "0")
    # Another 429 for a call sent before that pause was decided: the same news.
    observe(keys=[h, z], args=observe_args(NOW + 170, NOW + 100, pause=1000, shortest=200))
    assert state(redis_client, h) == first
    # One for a call sent after it, within 2 s of its end: the pause doubles.
    observe(keys=[h, z], args=observe_args(NOW + 500, NOW + 400, pause=1000, shortest=200))
    assert state(redis_client, h)["pause_until"] == f"{NOW + 900:.3f}"
