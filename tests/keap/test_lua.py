"""The token store's Lua script run on its own on the real Redis, loaded as TokenStore loads it."""
from __future__ import annotations

import json

import pytest

from worker import lua


@pytest.fixture
def save_pair(redis_client):
    return redis_client.register_script(lua.load("worker.keap", "save_pair"))


def test_save_pair_stores_the_pair_and_lifts_only_the_pause_its_replaced_grant_raised(redis_client, save_pair,
                                                                                         key_prefix):
    pair, paused = f"{key_prefix}:pair", f"{key_prefix}:paused"
    redis_client.set(paused, json.dumps({"since": 1, "reason": "invalid_grant", "grant": "old"}))
    # Another grant's pause stays (and so does any pause when nothing is replaced): the pair is stored anyway.
    assert save_pair(keys=[pair, paused], args=[b"pair-1", "other"]) == 0
    assert save_pair(keys=[pair, paused], args=[b"pair-2", ""]) == 0
    assert redis_client.get(pair) == b"pair-2" and redis_client.exists(paused)
    # The refresh that won the race with the refused one: the grant is alive, the pause goes.
    assert save_pair(keys=[pair, paused], args=[b"pair-3", "old"]) == 1
    assert redis_client.get(pair) == b"pair-3" and not redis_client.exists(paused)
    # Without a pause there is nothing to lift.
    assert save_pair(keys=[pair, paused], args=[b"pair-4", "old"]) == 0
    assert redis_client.get(pair) == b"pair-4"
