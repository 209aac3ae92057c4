"""The ledger against a real Redis: registration, step runs under a lease, fenced intents, the keeper's index."""
from __future__ import annotations

import time

import pytest

from worker.ledger import Lease, LeaseLost, Ledger, OrphanWrite, leases

STEPS = ("create_order", "add_items", "record_payment")


@pytest.fixture
def ledger(redis_client, key_prefix):
    return Ledger(redis_client, key_prefix)


def register(ledger, ext, **kw):
    return ledger.register(ext, {"external_id": ext}, kw.pop("lane", "live"), first_step="create_order", **kw)


def test_register_refuses_active_done_and_cancelled_orders(ledger):
    ok, old, step, ticket = register(ledger, "o-1")
    assert (ok, old, step) == (True, None, "create_order") and ticket
    assert register(ledger, "o-1")[:2] == (False, "queued")
    assert ledger.claim("o-1", "create_order", "t1", 5, ticket, STEPS)[0] == "ok"
    assert ledger.finish("o-1", token="t1", ticket=ticket)
    assert register(ledger, "o-1")[:2] == (False, "done")
    assert register(ledger, "o-1", lane="backfill", force=True)[:2] == (True, "done")
    assert ledger.cancel("o-1") == "queued"
    assert register(ledger, "o-1", force=True)[:2] == (False, "cancelled")  # cancelled is final


def test_failed_order_resumes_at_its_failed_step_and_keeps_its_results(ledger):
    _, _, _, ticket = register(ledger, "o-2")
    ledger.claim("o-2", "create_order", "t", 5, ticket, STEPS)
    ledger.record("o-2", {"order_id": "42"})
    ledger.fail("o-2", token="t", ticket=ticket, error="Keap refused the payment", step="record_payment",
                kind="rejected")
    state = ledger.get("o-2")
    assert (state.status, state.error_step, state.error_kind) == ("failed", "record_payment", "rejected")
    ok, old, step, _ = register(ledger, "o-2")
    assert (ok, old, step) == (True, "failed", "record_payment")
    state = ledger.get("o-2")
    assert state.status == "queued" and state.error is None and state.results == {"order_id": "42"}


def test_messages_of_an_earlier_sending_or_an_earlier_step_are_stale(ledger):
    _, _, _, first = register(ledger, "o-3")
    _, _, _, second = register(ledger, "o-3", force=True)
    assert ledger.claim("o-3", "create_order", "a", 5, first, STEPS)[0] == "stale"
    assert ledger.claim("o-3", "create_order", "a", 5, second, STEPS)[0] == "ok"
    assert ledger.claim("o-3", "create_order", "b", 5, second, STEPS)[0] == "busy"  # one run at a time
    assert ledger.advance("o-3", token="a", ticket=second, step="add_items", start_within=60)
    assert ledger.claim("o-3", "create_order", "c", 5, second, STEPS)[0] == "stale"  # a redelivered earlier step
    assert ledger.claim("o-3", "add_items", "c", 5, second, STEPS)[0] == "ok"


def test_intents_are_written_only_under_the_lease(ledger):
    _, _, _, ticket = register(ledger, "o-4")
    ledger.claim("o-4", "record_payment", "mine", 5, ticket, STEPS)
    ledger.mark_intent("o-4", "payment:ch_1", "mine")
    intent = ledger.get("o-4").intents["payment:ch_1"]
    assert abs(intent.at - ledger.now()) < 2 and intent.checks == 0
    assert ledger.note_check("o-4", "payment:ch_1") == 1
    with pytest.raises(LeaseLost):
        ledger.mark_intent("o-4", "payment:ch_2", "someone-else")
    ledger.record("o-4", {"payment:ch_1": "7"}, "mine", write="payment:ch_1")
    state = ledger.get("o-4")
    assert state.intents == {} and state.results == {"payment:ch_1": "7"}


def test_an_answer_recorded_without_the_lease_is_an_orphan_and_the_ledger_stays(ledger):
    _, _, _, ticket = register(ledger, "o-5")
    ledger.claim("o-5", "create_order", "mine", 5, ticket, STEPS)
    ledger.record("o-5", {"order_id": "7"}, "mine", write="order_id")
    with pytest.raises(OrphanWrite):
        ledger.record("o-5", {"order_id": "8"}, "gone", write="order_id")
    with pytest.raises(LeaseLost):
        ledger.record("o-5", {"keap_total": "1.00"}, "gone")
    assert ledger.get("o-5").results == {"order_id": "7"}
    assert [(o.external_id, o.what, o.results) for o in ledger.orphans()] == [("o-5", "order_id", {"order_id": "8"})]
    assert ledger.orphan_count() == 1


def test_the_lease_holds_by_its_own_clock_until_seconds_less_the_margin_then_only_if_redis_renews_it(ledger):
    _, _, _, ticket = register(ledger, "o-6")
    ledger.claim("o-6", "create_order", "mine", 10, ticket, STEPS)
    fresh = Lease(ledger, "order:o-6", 10, "mine", since=leases.clock())
    assert fresh.holds()
    # Claimed (by its own clock) 8.5 s ago: 1.5 s may be left. It holds only because Redis renews it now,
    starved = Lease(ledger, "order:o-6", 10, "mine", since=leases.clock() - 8.5)
    assert starved.holds() and ledger.redis.pttl(ledger.lease_key("order:o-6")) > 9000
    # and one whose key is gone (it stood still past the lease, another run took it) is lost for good.
    gone = Lease(ledger, "order:o-6", 10, "someone-before", since=leases.clock() - 8.5)
    assert not gone.holds() and gone.lost.is_set() and not gone.holds()


def test_status_index_and_watch_follow_every_move(ledger):
    tickets = {ext: register(ledger, ext, lane="backfill")[3] for ext in ("a", "b", "c")}
    ledger.claim("a", "create_order", "t", 5, tickets["a"], STEPS)
    ledger.finish("a", token="t", ticket=tickets["a"])
    ledger.fail("b", step="create_order", error="x", kind="keap")
    ledger.claim("c", "create_order", "t", 5, tickets["c"], STEPS)
    ledger.park("c", token="t", ticket=tickets["c"], step="create_order", until=ledger.now() + 60,
                reason="daily quota")
    counts = {s: ledger.count(s) for s in ("queued", "running", "waiting", "done", "failed")}
    assert counts == {"queued": 0, "running": 0, "waiting": 1, "done": 1, "failed": 1}
    assert [ext for ext, _ in ledger.iter_watched()] == ["c"]  # only what is active is watched
    assert ledger.get("c").parked_reason == "daily quota"


def test_a_lease_is_renewed_while_held_and_gone_soon_after_its_holder(ledger):
    lease = Lease(ledger, "thing", 0.6)
    assert lease.acquire()
    time.sleep(1.5)  # more than twice its lifetime: only renewal keeps it
    assert not Lease(ledger, "thing", 0.6).acquire(wait=0)
    lease._stop.set()  # the holder dies: nobody renews
    time.sleep(0.8)
    other = Lease(ledger, "thing", 0.6)
    assert other.acquire(wait=0)
    other.release()
