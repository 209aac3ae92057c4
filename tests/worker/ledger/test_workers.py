"""lua/received.lua and the heartbeat run directly on the real Redis: who holds a queued order's message."""
from __future__ import annotations

from worker.ledger import Ledger


def test_a_received_message_names_its_holder_only_while_it_is_the_orders_current_one(redis_client, key_prefix):
    ledger = Ledger(redis_client, key_prefix)
    _, _, step, ticket = ledger.register("o", {"external_id": "o"}, "live", first_step="create_order",
                                         start_within=300)
    assert not ledger.received("o", "another-ticket", step, "w1@h", 20)  # a stale message names nobody
    assert not ledger.received("o", ticket, "add_items", "w1@h", 20)
    assert ledger.holder("o") is None
    assert ledger.received("o", ticket, step, "w1@h", 20)
    now = ledger.now()
    assert now + 19 < redis_client.zscore(ledger.watch_key, "o") < now + 21  # the keeper looks in 20 s, not 300
    assert ledger.holder("o").worker == "w1@h" and not ledger.holder("o").alive
    ledger.beat("w1@h", 2)
    assert ledger.holder("o").alive
    redis_client.hset(ledger.order_key("o"), "status", "running")  # the step started: no holder to watch
    assert ledger.holder("o") is None
    assert not ledger.received("o", ticket, step, "w2@h", 20)
