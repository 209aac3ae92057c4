"""The ledger's search indexes (email digest, Keap order and contact id) and its counts by lane, against a real
Redis: written where the data is written, cleaned by retention, and equal to the truth after every move."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from worker.ledger import STATUSES, Ledger
from worker.ledger.store import email_digest

STEPS = ("create_order", "add_items", "record_payment")


@pytest.fixture
def ledger(redis_client, key_prefix):
    return Ledger(redis_client, key_prefix)


def register(ledger, ext, email="ada@example.com", lane="live", **kw):
    message = {"external_id": ext, "customer": {"email": email}} if email else {"external_id": ext}
    return ledger.register(ext, message, lane, first_step="create_order", **kw)


def finish(ledger, ext, ticket, results=None):
    assert ledger.claim(ext, "create_order", "t-" + ext, 5, ticket, STEPS)[0] == "ok"
    ledger.record(ext, results or {}, "t-" + ext)
    assert ledger.finish(ext, token="t-" + ext, ticket=ticket)


def test_orders_are_found_by_email_in_any_case_and_only_its_digest_is_stored(ledger, redis_client, key_prefix):
    register(ledger, "o-1", " Ada@Example.COM ")
    register(ledger, "o-2", "ada@example.com")
    register(ledger, "o-3", "bob@example.com")
    register(ledger, "o-4", None)  # no email: in no email's set
    assert ledger.by_email("ADA@example.com") == ["o-1", "o-2"]
    assert ledger.by_email("bob@example.com ") == ["o-3"] and ledger.by_email("nobody@example.com") == []
    assert ledger.by_email("") == []
    keys = {k.decode() for k in redis_client.scan_iter(f"{key_prefix}:*")}
    assert f"{key_prefix}:email:{email_digest('ada@example.com')}" in keys
    assert not [k for k in keys if "@" in k or "example" in k]  # never the address itself
    assert len(email_digest("ada@example.com")) == 32


def test_a_corrected_order_moves_to_its_new_email(ledger):
    _, _, _, ticket = register(ledger, "o-1", "old@example.com")
    ledger.claim("o-1", "create_order", "t", 5, ticket, STEPS)
    ledger.fail("o-1", token="t", ticket=ticket, error="bad email", step="create_order", kind="rejected")
    register(ledger, "o-1", "new@example.com")  # the operator's retry with a fixed file
    assert ledger.by_email("old@example.com") == [] and ledger.by_email("new@example.com") == ["o-1"]


def test_orders_are_found_by_keap_order_and_contact_id(ledger):
    _, _, _, t1 = register(ledger, "o-1")
    _, _, _, t2 = register(ledger, "o-2")
    finish(ledger, "o-1", t1, {"order_id": "501", "contact_id": "77"})
    finish(ledger, "o-2", t2, {"order_id": "502", "contact_id": "77", "payment:p1": "9001"})
    assert ledger.by_keap_id("501") == {"order": ["o-1"], "contact": []}
    assert ledger.by_keap_id("77") == {"order": [], "contact": ["o-1", "o-2"]}
    assert ledger.by_keap_id("9001") == {"order": [], "contact": []}  # only order and contact ids are indexed
    ledger.record("o-2", {"order_id": "503"})  # an order id written again (another Keap order): the old one goes
    assert ledger.by_keap_id("502")["order"] == [] and ledger.by_keap_id("503")["order"] == ["o-2"]


def test_retention_drops_an_order_from_every_index_and_keeps_its_lane_count(ledger, redis_client, key_prefix):
    _, _, _, t1 = register(ledger, "o-1", lane="backfill")
    _, _, _, t2 = register(ledger, "o-2")
    finish(ledger, "o-1", t1, {"order_id": "601", "contact_id": "88"})
    finish(ledger, "o-2", t2, {"order_id": "602", "contact_id": "88"})
    assert ledger.compact_done(-1) == (2, 2)
    assert ledger.by_email("ada@example.com") == []
    assert ledger.by_keap_id("601") == {"order": [], "contact": []}
    assert ledger.by_keap_id("88") == {"order": [], "contact": []}
    left = {k.decode() for k in redis_client.scan_iter(f"{key_prefix}:*")}
    assert not [k for k in left if k.split(":")[1] in ("email", "contact")]
    assert redis_client.hlen(f"{key_prefix}:keapid") == 0
    assert ledger.get("o-1").results == {"order_id": "601", "contact_id": "88"}  # the marker keeps them
    assert ledger.by_lane()["backfill"]["done"] == 1 and ledger.by_lane()["live"]["done"] == 1
    # A compacted order sent again (force) leaves done in its own lane.
    register(ledger, "o-1", lane="live", force=True)
    assert ledger.by_lane()["backfill"]["done"] == 0 and ledger.by_lane()["live"]["queued"] == 1


def _truth(ledger) -> dict[str, Counter]:
    truth: dict[str, Counter] = {}
    for status in STATUSES:
        for ext in ledger.redis.smembers(ledger.status_key(status)):
            lane = ledger.get(ext.decode()).lane
            truth.setdefault(lane, Counter())[status] += 1
    return truth


def _counts(ledger) -> dict[str, Counter]:
    return {lane: Counter({s: n for s, n in by.items() if n}) for lane, by in ledger.by_lane().items()
            if any(by.values())}


def test_counts_by_lane_and_status_equal_the_truth_after_every_move(ledger):
    rng = random.Random(20)
    tickets = {}
    for i in range(40):
        ext, lane = f"o-{i}", ("live", "backfill")[i % 2]
        tickets[ext] = register(ledger, ext, lane=lane)[3]
    for round_ in range(6):
        for ext in list(tickets):
            status = ledger.get(ext).status
            token, ticket = f"t-{ext}-{round_}", tickets[ext]
            choice = rng.choice(("claim", "advance", "park", "fail", "finish", "cancel", "register", "resend"))
            if choice == "register" or status == "failed":  # a retry, maybe into the other lane
                ok, _, _, new = register(ledger, ext, lane=rng.choice(("live", "backfill")), force=True)
                tickets[ext] = new if ok else ticket
            elif choice == "cancel":
                ledger.cancel(ext)
            elif choice == "resend" and status in ("queued", "running", "waiting"):
                tickets[ext] = ledger.resend(ext, status, 60, redrive=True) or ticket
            elif status in ("queued", "running", "waiting"):
                if ledger.claim(ext, "create_order", token, 5, ticket, STEPS)[0] != "ok":
                    continue
                if choice == "advance":
                    ledger.advance(ext, token=token, ticket=ticket, step="add_items", start_within=60)
                elif choice == "park":
                    ledger.park(ext, token=token, ticket=ticket, step="add_items", until=ledger.now() + 60,
                                reason="quota")
                elif choice == "fail":
                    ledger.fail(ext, step="add_items", error="no", kind="rejected", token=token, ticket=ticket)
                elif choice == "finish":
                    ledger.finish(ext, token=token, ticket=ticket)
        ledger.compact_done(-1, limit=5)
        assert _counts(ledger) == _truth(ledger), f"round {round_}"
    assert {lane for lane in _truth(ledger)} == {"live", "backfill"}
    assert sum(sum(c.values()) for c in _counts(ledger).values()) == 40


def test_counting_again_rebuilds_the_counts_of_orders_that_moved_before_them(ledger, redis_client):
    for i in range(6):
        register(ledger, f"o-{i}", lane=("live", "backfill")[i % 3 == 0])
    ledger.cancel("o-1")
    truth = _counts(ledger)
    redis_client.delete(ledger.lanes_key)  # a ledger from before the counts existed
    assert ledger.by_lane() == {}
    ledger.count_lanes()
    assert _counts(ledger) == truth == {"backfill": Counter(queued=2), "live": Counter(queued=3, cancelled=1)}


def test_indexing_existing_orders_fills_the_search_indexes(ledger, redis_client, key_prefix):
    _, _, _, ticket = register(ledger, "o-1", "Old@Example.com")
    finish(ledger, "o-1", ticket, {"order_id": "701", "contact_id": "99"})
    for key in [f"{key_prefix}:keapid", f"{key_prefix}:contact:99", ledger.email_key(email_digest("old@example.com"))]:
        redis_client.delete(key)  # as before this version
    assert ledger.by_email("old@example.com") == [] and ledger.by_keap_id("701")["order"] == []
    assert ledger.index_existing() == 1
    assert ledger.by_email("old@example.com") == ["o-1"]
    assert ledger.by_keap_id("701") == {"order": ["o-1"], "contact": []} and ledger.by_keap_id("99")["contact"] == ["o-1"]
