"""The WooCommerce spool: whole files only, oldest first, kept when the import fails, taken by one process."""
from __future__ import annotations

import pytest
import redis

from admin.web.spool import Spool


def test_kept_deliveries_are_drained_in_order_and_kept_while_redis_is_away(tmp_path):
    spool = Spool(tmp_path / "spool")
    for n in range(3):
        spool.keep({"delivery": f"d{n}", "body": "{}"})
    assert len(spool.pending()) == 3 and not list((tmp_path / "spool").glob(".*.tmp"))

    def away(record):
        raise redis.ConnectionError("down")

    with pytest.raises(redis.ConnectionError):
        spool.drain(away, away=(redis.RedisError,))
    assert len(spool.pending()) == 3  # nothing lost
    seen = []
    assert spool.drain(lambda record: seen.append(record["delivery"])) == 3
    assert seen == ["d0", "d1", "d2"] and spool.pending() == []


def test_a_delivery_that_cannot_be_imported_is_set_aside_and_the_rest_go_on(tmp_path):
    spool = Spool(tmp_path / "spool")
    for n in range(3):
        spool.keep({"delivery": f"d{n}", "body": "{}"})
    first = spool.pending()[0].name
    (tmp_path / "spool" / first).write_text("{not json")  # damaged on disk
    seen = []

    def handle(record):
        if record["delivery"] == "d1":
            raise KeyError("a bug in the import")
        seen.append(record["delivery"])

    assert spool.drain(handle, away=(redis.RedisError,)) == 1
    assert seen == ["d2"] and spool.pending() == []
    failed = sorted(p.name for p in (tmp_path / "spool" / "failed").iterdir())
    assert len(failed) == 2 and first in failed  # kept for an operator, out of the drain's way
