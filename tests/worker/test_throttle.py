"""The shared rate limit: parsing, and windows enforced across clients against a real Redis."""
from __future__ import annotations

import threading

import pytest
import redis as redis_lib

from tests.conftest import REDIS_URL
from worker.throttle import QuotaWait, Throttle, Window, parse_limits


def test_profiles_and_custom_limits_parse():
    assert parse_limits("sak") == [Window(5, 1), Window(240, 60), Window(30000, 86400)]
    assert parse_limits("oauth")[1] == Window(1500, 60)
    assert parse_limits("off") == []
    assert parse_limits("20/s, 600/min,5000/day") == [Window(20, 1), Window(600, 60), Window(5000, 86400)]


def test_bad_limit_names_the_part_and_the_format():
    with pytest.raises(ValueError, match=r"'20/hour'.*N/s, N/min or N/day"):
        parse_limits("5/s,20/hour")


def test_second_window_is_shared_by_every_client(redis_client, key_prefix):
    # Two Throttle objects on two connections stand for two worker processes.
    a = Throttle(redis_client, parse_limits("4/s"), key=f"{key_prefix}:t")  # 80%: 3 per second
    b = Throttle(redis_lib.Redis.from_url(REDIS_URL), parse_limits("4/s"), key=f"{key_prefix}:t")
    results = [a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()]
    assert results[:3] == [0, 0, 0]
    assert 0 < results[3] <= 1.001  # the fourth call waits for the oldest slot to leave the 1 s window


def test_concurrent_acquires_never_exceed_the_limit(redis_client, key_prefix):
    throttle = Throttle(redis_client, parse_limits("10/min"), key=f"{key_prefix}:c")  # 98%: 9
    granted = []

    def take():
        granted.append(throttle.try_acquire() == 0)

    threads = [threading.Thread(target=take) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 9


def test_daily_quota_raises_quota_wait_until_midnight(redis_client, key_prefix):
    throttle = Throttle(redis_client, parse_limits("2/day"), key=f"{key_prefix}:d", max_block=1)
    throttle.acquire()
    throttle.acquire()
    with pytest.raises(QuotaWait) as exc:
        throttle.acquire()
    assert 0 < exc.value.seconds <= 86400


def test_acquire_blocks_through_a_short_wait(redis_client, key_prefix):
    throttle = Throttle(redis_client, parse_limits("1/s"), key=f"{key_prefix}:b", max_block=3)
    throttle.acquire()
    throttle.acquire()  # waits about a second instead of raising
    assert throttle.try_acquire() > 0
