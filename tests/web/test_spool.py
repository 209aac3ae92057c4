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
        spool.drain(away)
    assert len(spool.pending()) == 3  # nothing lost
    seen = []
    assert spool.drain(lambda record: seen.append(record["delivery"])) == 3
    assert seen == ["d0", "d1", "d2"] and spool.pending() == []
