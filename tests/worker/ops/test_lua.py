"""worker/ops/lua/refusal_throttle.lua run directly on the real Redis: one warning per interval, standing for every
refusal held back before it."""
from __future__ import annotations

from worker import lua


def test_one_warning_per_interval_counts_the_refusals_held_back(redis_client, key_prefix):
    script = redis_client.register_script(lua.load("worker.ops", "refusal_throttle"))
    keys = [f"{key_prefix}:sent", f"{key_prefix}:count"]
    assert script(keys=keys, args=[60]) == 1  # the first refusal is sent at once
    assert [script(keys=keys, args=[60]) for _ in range(3)] == [0, 0, 0]  # held back within the interval
    assert redis_client.ttl(keys[0]) > 55 and int(redis_client.get(keys[1])) == 3
    redis_client.delete(keys[0])  # the interval is over
    assert script(keys=keys, args=[60]) == 4  # this one and the three held back
    assert int(redis_client.get(keys[1])) == 0 and redis_client.ttl(keys[1]) > 60
