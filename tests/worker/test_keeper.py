"""The keeper's decisions against a real Redis, with the sending recorded instead of put on a broker."""
from __future__ import annotations

import threading
import time

import pytest

from worker import keeper
from worker.ledger import Ledger
from worker.settings import Settings

STEPS = ("create_order", "add_items", "record_payment")


@pytest.fixture
def ledger(redis_client, key_prefix):
    return Ledger(redis_client, key_prefix)


@pytest.fixture
def settings():
    return Settings(queued_stall_seconds=0.2, lease_seconds=1, max_redrives=2)


class Sent(list):
    def __call__(self, external_id, lane, step, ticket):
        self.append((external_id, lane, step, ticket))


def queued(ledger, ext, stall=0.2):
    return ledger.register(ext, {"external_id": ext}, "backfill", first_step="create_order", start_within=stall)[3]


def test_a_parked_order_is_released_when_its_time_comes_with_a_new_ticket(ledger, settings):
    ticket = queued(ledger, "k-1")
    ledger.claim("k-1", "create_order", "t", 1, ticket, STEPS)
    ledger.advance("k-1", token="t", ticket=ticket, step="add_items", start_within=60)
    ledger.claim("k-1", "add_items", "t", 1, ticket, STEPS)
    ledger.park("k-1", token="t", ticket=ticket, step="add_items", until=ledger.now() + 0.3, reason="daily quota")
    sent = Sent()
    assert keeper.tick(ledger, settings, sent) == {} and sent == []  # not yet
    time.sleep(0.4)
    assert keeper.tick(ledger, settings, sent) == {"released": 1}
    [(ext, lane, step, new_ticket)] = sent
    assert (ext, lane, step) == ("k-1", "backfill", "add_items") and new_ticket not in (None, ticket)
    state = ledger.get("k-1")
    assert state.status == "queued" and state.ticket == new_ticket and state.redrives == 0


def test_a_dead_workers_order_is_sent_again_and_a_live_one_left_alone(ledger, settings):
    dead, alive = queued(ledger, "k-2"), queued(ledger, "k-3")
    ledger.claim("k-2", "create_order", "gone", 0.2, dead, STEPS)  # its lease lasts 0.2 s and is never renewed
    ledger.claim("k-3", "create_order", "busy", 30, alive, STEPS)
    ledger.watch_at("k-3", 0)
    time.sleep(1.5)  # the running deadline is the lease plus a 1 s margin
    sent = Sent()
    assert keeper.tick(ledger, settings, sent) == {"redriven": 1, "working": 1}
    assert [s[:3] for s in sent] == [("k-2", "backfill", "create_order")]
    assert ledger.get("k-2").redrives == 1 and ledger.get("k-3").status == "running"


def test_an_order_that_never_starts_is_sent_again_then_failed_with_what_to_do(ledger, settings):
    queued(ledger, "k-4")
    sent = Sent()
    for _ in range(3):
        time.sleep(0.3)
        keeper.tick(ledger, settings, sent)
    assert len(sent) == 2
    state = ledger.get("k-4")
    assert state.status == "failed" and state.error_kind == "stalled"
    assert "no progress after 2 re-sends" in state.error and "keap-orders retry k-4" in state.error
    assert list(ledger.iter_watched()) == []


def test_finished_orders_leave_the_watch_and_pending_single_steps_are_seen_through(ledger, settings):
    ticket = queued(ledger, "k-5")
    ledger.claim("k-5", "create_order", "t", 1, ticket, STEPS)
    ledger.finish("k-5", token="t", ticket=ticket)
    ledger.watch_single("k-5", "record_payment", 0.1)
    queued(ledger, "k-6")
    ledger.cancel("k-6")
    ledger.watch_at("k-6", 0)
    time.sleep(0.2)
    sent = Sent()
    assert keeper.tick(ledger, settings, sent) == {"redriven": 1, "forgotten": 1}
    assert sent == [("k-5", "backfill", "record_payment", None)]  # a single step, no chain
    assert ledger.get("k-5").status == "done"


def test_two_steps_sent_on_their_own_at_once_are_each_seen_through(ledger, settings):
    ticket = queued(ledger, "k-7")
    ledger.claim("k-7", "create_order", "t", 1, ticket, STEPS)
    ledger.finish("k-7", token="t", ticket=ticket)
    ledger.watch_single("k-7", "record_payment", 0.1)
    ledger.watch_single("k-7", "set_custom_fields", 0.1)
    ledger.watch_single("k-7", "record_payment", 0.1)  # the same step again: one entry
    assert ledger.get("k-7").single == "record_payment set_custom_fields"
    ledger.finish_single("k-7", token="", step="record_payment")  # one finished, the other's worker died
    time.sleep(0.2)
    sent = Sent()
    assert keeper.tick(ledger, settings, sent) == {"redriven": 1}
    assert sent == [("k-7", "backfill", "set_custom_fields", None)]
    ledger.finish_single("k-7", token="", step="set_custom_fields")
    assert ledger.get("k-7").single is None and "k-7" not in dict(ledger.iter_watched())


def test_a_worker_that_dies_between_a_step_and_sending_the_next_is_seen_within_a_minute(ledger):
    slow = Settings(queued_stall_seconds=300, lease_seconds=1, max_redrives=2)
    for ext, worker in (("k-8", "w-dead"), ("k-9", "w-live")):
        ticket = queued(ledger, ext, stall=300)
        assert ledger.received(ext, ticket, "create_order", worker, 300)
        ledger.claim(ext, "create_order", "t", 1, ticket, STEPS)
        # The step is done; its worker sends the next message after this (and the first one dies before it does).
        ledger.advance(ext, token="t", ticket=ticket, step="add_items", start_within=300, look_in=0.1)
    ledger.beat("w-live", 60)
    time.sleep(0.2)
    sent = Sent()
    assert keeper.tick(ledger, slow, sent) == {"redriven": 1, "held": 1}
    assert [(ext, step) for ext, _, step, _ in sent] == [("k-8", "add_items")]  # not after the 300 s stall time


def test_two_keepers_at_once_send_each_due_order_once(ledger, settings):
    for i in range(40):
        queued(ledger, f"k-m{i}")
    time.sleep(0.3)
    sent = Sent()
    threads = [threading.Thread(target=keeper.tick, args=(ledger, settings, sent)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(s[0] for s in sent) == sorted(f"k-m{i}" for i in range(40))


def finished(ledger, ext, results):
    ticket = queued(ledger, ext)
    ledger.claim(ext, "create_order", "t", 5, ticket, STEPS)
    ledger.record(ext, results)
    ledger.finish(ext, token="t", ticket=ticket)


def test_the_keeper_compacts_only_done_orders_past_retention_reading_only_those(ledger, redis_client, key_prefix):
    ids = {"old": "o-old", "busy": "o-busy", "cancelled": "o-cancelled", "new": "o-new"}
    for ext in list(ids.values())[:3]:
        finished(ledger, ext, {"order_id": "7", "keap_total": "10.00", "payment:ch_1": "9", "field:Gift": '"Hi Ana"',
                               "item:0": "inline", "subscription:0": "5", "subamount:0": "9.00", "invoice:0": "3"})
    ledger.watch_single("o-busy", "record_payment", 60)  # a step sent on its own is still to run on it
    ledger.cancel("o-cancelled")
    time.sleep(0.3)
    finished(ledger, "o-new", {"order_id": "8"})
    retention = Settings(done_retention_days=0.2 / 86400)  # 0.2 s

    assert keeper.compact(ledger, retention) == 1
    old = ledger.get("o-old")
    assert old.status == "done" and old.compacted_at and old.done_at and old.message is None
    assert old.results == {"order_id": "7", "payment:ch_1": "9", "item:0": "inline", "subscription:0": "5",
                           "invoice:0": "3"}  # the ids of writes without an idempotency key; no values, no checks
    assert set(redis_client.hkeys(ledger.order_key("o-old"))) == {
        b"status", b"done_at", b"compacted_at", b"r:order_id", b"r:payment:ch_1", b"r:item:0", b"r:subscription:0",
        b"r:invoice:0", b"lane"}  # and its lane: the counts by lane stay right
    assert ledger.get("o-busy").compacted_at is None and ledger.get("o-busy").message  # looked at again later
    assert ledger.get("o-cancelled").status == "cancelled" and ledger.get("o-cancelled").message
    # What is left in the index: the new order and the busy one (pushed an hour on); the cancelled one is dropped.
    left = dict(redis_client.zrange(f"{key_prefix}:done", 0, -1, withscores=True))
    assert set(left) == {b"o-new", b"o-busy"} and left[b"o-busy"] > ledger.now() - 0.3 + 3000
    assert keeper.compact(ledger, retention) == 0  # nothing due: the pass reads nothing
    assert keeper.compact(ledger, Settings(done_retention_days=0)) == 0  # retention off

    # A compacted order stays done for producers; re-registering it (forced) keeps its ids, so nothing is rewritten.
    assert ledger.register("o-old", {"external_id": "o-old"}, "live", first_step="create_order")[:2] == (False, "done")
    assert ledger.register("o-old", {"external_id": "o-old"}, "live", first_step="create_order", force=True)[0]
    assert ledger.get("o-old").results["payment:ch_1"] == "9" and ledger.get("o-old").compacted_at is None


def test_done_orders_from_before_the_index_are_indexed_once(ledger, redis_client, key_prefix):
    finished(ledger, "o-1", {"order_id": "1"})
    finished(ledger, "o-2", {"order_id": "2"})
    redis_client.delete(f"{key_prefix}:done")  # as a ledger written by an earlier version
    redis_client.hdel(ledger.order_key("o-2"), "done_at")
    assert ledger.index_done(batch=1) == 2 and ledger.index_done() == 0
    assert ledger.compact_done(0) == (2, 2)
