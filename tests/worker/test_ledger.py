"""The ledger against a real Redis: registration guard, results, intents, status index."""
from __future__ import annotations

from worker.ledger import Ledger


def test_register_refuses_active_or_done_orders_unless_forced(redis_client, key_prefix):
    ledger = Ledger(redis_client, key_prefix)
    assert ledger.register("o-1", {"external_id": "o-1"}, "live") == (True, None)
    assert ledger.register("o-1", {"external_id": "o-1"}, "live") == (False, "queued")
    ledger.finish("o-1")
    assert ledger.register("o-1", {"external_id": "o-1"}, "live") == (False, "done")
    assert ledger.register("o-1", {"external_id": "o-1"}, "backfill", force=True) == (True, "done")
    assert ledger.get("o-1").lane == "backfill"


def test_failed_order_can_be_registered_again_and_keeps_its_results(redis_client, key_prefix):
    ledger = Ledger(redis_client, key_prefix)
    ledger.register("o-2", {"v": 1}, "live")
    ledger.start_step("o-2", "record_payment")
    ledger.record("o-2", {"order_id": "42"})
    ledger.fail("o-2", "record_payment", "Keap refused the payment", "rejected")
    state = ledger.get("o-2")
    assert (state.status, state.error_step, state.error_kind) == ("failed", "record_payment", "rejected")

    assert ledger.register("o-2", {"v": 2}, "live") == (True, "failed")
    state = ledger.get("o-2")
    assert state.status == "queued" and state.error is None and state.error_step is None
    assert state.results == {"order_id": "42"} and state.message == {"v": 2}


def test_intent_is_cleared_by_the_result(redis_client, key_prefix):
    ledger = Ledger(redis_client, key_prefix)
    ledger.register("o-3", {}, "live")
    ledger.mark_intent("o-3", "payment:ch_1")
    assert "payment:ch_1" in ledger.get("o-3").intents
    ledger.record("o-3", {"payment:ch_1": "7"})
    state = ledger.get("o-3")
    assert state.intents == {} and state.results == {"payment:ch_1": "7"}


def test_status_index_follows_every_move(redis_client, key_prefix):
    ledger = Ledger(redis_client, key_prefix)
    for ext in ("a", "b", "c"):
        ledger.register(ext, {}, "backfill")
    ledger.start_step("a", "create_order")
    ledger.finish("a")
    ledger.fail("b", "create_order", "x", "keap")
    assert (ledger.count("queued"), ledger.count("running"), ledger.count("done"), ledger.count("failed")) == (1, 0, 1, 1)
    assert ledger.ids_with_status("failed") == ["b"]
    assert ledger.statuses(["a", "b", "c", "zzz"]) == {"a": "done", "b": "failed", "c": "queued", "zzz": None}
    assert ledger.get("a").attempts == 1
