"""The shared throttle in front of the sandbox over real HTTP: worker processes pacing one key, Keap's headers
correcting counters Redis lost, and a 429 pausing everyone."""
from __future__ import annotations

import multiprocessing

import pytest
import requests

from sandbox.server import Sandbox
from tests.conftest import REDIS_URL, SANDBOX_KEY
from worker import context
from worker.keap import KeapRateLimited
from worker.settings import Settings
from worker.throttle import QuotaWait


def settings(sb: Sandbox, prefix: str, **overrides) -> Settings:
    return Settings(keap_api_key=SANDBOX_KEY, keap_base_url=sb.base_url, redis_url=REDIS_URL, key_prefix=prefix,
                    **overrides)


def _calls(base_url: str, prefix: str, limits: str, count: int, queue) -> None:
    s = Settings(keap_api_key=SANDBOX_KEY, keap_base_url=base_url, redis_url=REDIS_URL, key_prefix=prefix,
                 rate_limits=limits, throttle_send_margin_ms=40)
    client = context.keap_client(s)
    refused = 0
    for _ in range(count):
        try:
            client.request("GET", "/v2/orders/model")
        except KeapRateLimited:
            refused += 1
    queue.put(refused)


def test_worker_processes_stay_within_the_sandboxs_limit(key_prefix):
    # A wider send margin than the default keeps this test steady on a loaded machine; bench/throttle.py
    # measures the default.
    with Sandbox(limits="10/s,600/min", latency_ms=[20, 60]) as sb:
        ctx = multiprocessing.get_context("spawn")  # fork would copy the threads other tests left running
        queue = ctx.Queue()
        procs = [ctx.Process(target=_calls, args=(sb.base_url, key_prefix, "10/s,600/min", 6, queue))
                 for _ in range(4)]
        for p in procs:
            p.start()
        refused = sum(queue.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(10)
        stats = sb.stats()
    assert refused == 0 and stats["throttled_429"] == 0
    assert stats["max_per_second"]["api-key"] <= 10 and stats["total"] == 24


def test_keaps_count_wins_over_ours_when_someone_else_uses_the_key(key_prefix):
    with Sandbox(limits="100/s,8/min") as sb:
        # Another integration on the same key (or our own calls before a restart that lost Redis): 6 calls.
        for _ in range(6):
            requests.get(sb.base_url + "/rest/v2/orders/model", headers={"X-Keap-API-Key": SANDBOX_KEY}, timeout=5)
        client = context.keap_client(settings(sb, key_prefix, rate_limits="100/s,1000/min",
                                              throttle_max_block_seconds=1))
        client.request("GET", "/v2/orders/model")  # Keap answers: 7 of 8 used this minute. Its count wins,
        credential = client.session.throttle.snapshot()[0]
        assert credential["window"] == {"limit": 1000, "seconds": 60, "used": 7}
        # and so does its lower limit: the 8th call goes, the 9th waits for the minute instead of drawing a 429.
        client.request("GET", "/v2/orders/model")
        with pytest.raises(QuotaWait) as waited:
            client.request("GET", "/v2/orders/model")
        assert 55 < waited.value.seconds <= 61 and not waited.value.daily
        assert sb.stats()["throttled_429"] == 0


def test_a_429_pauses_every_client_of_the_key(redis_client, key_prefix):
    with Sandbox(limits="100/s,6000/min", faults={"burst_429": 1}) as sb:
        first = context.keap_client(settings(sb, key_prefix, rate_limits="10/s"))
        second = context.keap_client(settings(sb, key_prefix, rate_limits="10/s"))
        with pytest.raises(KeapRateLimited):
            first.request("GET", "/v2/orders/model")
        key = f"{key_prefix}:throttle:credential:{context.credential(settings(sb, key_prefix))[2]}"
        paused_until = float(redis_client.hget(f"{key}:state", "pause_until"))
        second.request("GET", "/v2/orders/model")  # waits out the pause instead of drawing its own 429
        slots = [score for _, score in redis_client.zrange(f"{key}:window", 0, -1, withscores=True)]
        assert max(slots) >= paused_until
        assert sb.stats()["throttled_429"] == 1


class Stop(Exception):
    pass


def test_the_fence_runs_after_the_slot_right_before_the_request_and_can_keep_it_from_leaving(key_prefix):
    with Sandbox(limits="off") as sb:
        client = context.keap_client(settings(sb, key_prefix, rate_limits="10/s"))
        seen = []

        def fence():  # what a write's fence sees: its slot taken, its request not yet at Keap
            seen.append((client.session.throttle.snapshot()[0]["day"]["total"], sb.stats()["total"]))

        with client.fenced(fence):
            client.request("POST", "/v2/orders/model/customFields", json={"label": "A", "field_type": "TEXT"})
        assert seen == [(1, 0)] and sb.stats()["total"] == 1

        def refuse():
            raise Stop

        with client.fenced(refuse), pytest.raises(Stop):
            client.request("GET", "/v2/orders/model")
        assert sb.stats()["total"] == 1  # nothing left


def test_a_plain_session_runs_the_fence_too(key_prefix):
    from worker.keap import ApiKeyAuth, KeapClient

    with Sandbox(limits="off") as sb:
        client = KeapClient(sb.base_url, ApiKeyAuth(SANDBOX_KEY), session=requests.Session())
        with client.fenced(lambda: (_ for _ in ()).throw(Stop())), pytest.raises(Stop):
            client.request("GET", "/v2/orders/model")
        assert sb.stats()["total"] == 0


def test_a_slot_gone_stale_is_void_and_a_late_one_within_its_slot_is_not(redis_client, key_prefix):
    import time

    from worker.throttle.pacing import Permit
    from worker.throttle.session import _Slot

    throttle = context.throttle(Settings(keap_api_key=SANDBOX_KEY, redis_url=REDIS_URL, key_prefix=key_prefix,
                                         rate_limits="4/s"))
    slot = _Slot(throttle)
    slot.permit = Permit(0.0, time.time() - 0.1)  # 100 ms late, within its 255 ms slot: it goes
    assert slot.usable() and throttle.stats.voided == 0
    slot.permit = Permit(0.0, time.time() - 60)  # its process stood still a minute: void
    assert not slot.usable() and throttle.stats.voided == 1
