"""Each Lua script of the ledger run directly on the real Redis: loaded by the ledger's loader, called with KEYS and
ARGV as its header says, its effect read back from the keys."""
from __future__ import annotations

import json
from itertools import takewhile
from pathlib import Path

import pytest

from worker.ledger import scripts
from worker.ledger.store import Store

TESTED = {"register", "claim", "end_run", "take_due", "resend", "mark_intent", "note_check", "lease_renew", "received",
          "lease_release", "compact", "cancel", "record", "clear_intent", "count_lanes", "watch_single"} | {"check_redis", "lost_write",
                                                                            "take_audits"}  # test_loss.py


@pytest.fixture
def keys(redis_client, key_prefix):
    """The ledger's key names (the scripts run below are called directly, not through the ledger's methods)."""
    return Store(redis_client, key_prefix)


@pytest.fixture
def lua(redis_client):
    return lambda name, keys, args: redis_client.register_script(scripts.source(name))(keys=keys, args=args)


def file(name: str) -> str:
    """A script's file as it is in the source tree."""
    return (Path(__file__).resolve().parents[3] / "worker" / "ledger" / "lua" / f"{name}.lua").read_text()


def now(redis_client) -> float:
    seconds, micros = redis_client.time()
    return seconds + micros / 1e6


def seed(redis_client, keys: Store, ext: str, **fields) -> None:
    """An order as the scripts leave it: its hash and its status set."""
    redis_client.hset(keys.order_key(ext), mapping=fields)
    redis_client.sadd(keys.status_key(fields["status"]), ext)


def machine(keys: Store, ext: str) -> list[str]:
    """KEYS[1..3] of the state machine's scripts: the order's hash, the status-set prefix, the watch set."""
    return [keys.order_key(ext), keys.status_key(""), keys.watch_key]


def lease(keys: Store, ext: str) -> str:
    return keys.lease_key(f"order:{ext}")


def fields(redis_client, keys: Store, ext: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.order_key(ext)).items()}


def members(redis_client, key: str) -> set[str]:
    return {m.decode() for m in redis_client.smembers(key)}


# the loader -----------------------------------------------------------------------------------------------
def test_every_script_has_its_contract_in_its_header_and_a_test_here():
    assert set(scripts.names()) == TESTED
    for name in scripts.names():
        header = "\n".join(takewhile(lambda line: line.startswith("--"), file(name).splitlines()))
        assert all(part in header for part in ("-- Preamble: ", "KEYS[1]", "ARGV[1]", "Returns")), name


def test_the_loader_puts_the_preambles_a_header_names_in_front_in_that_order():
    assert scripts.source("claim") == file("now") + file("move") + file("claim")
    assert scripts.source("cancel") == file("move") + file("cancel")
    assert scripts.source("note_check") == file("note_check")


# the order state machine ----------------------------------------------------------------------------------
def registering(keys: Store, ext: str) -> list[str]:
    """KEYS of register.lua: the state machine's, then the email-index prefix."""
    return machine(keys, ext) + [keys.email_key("")]


def test_register_queues_a_new_order_and_refuses_an_active_one(redis_client, keys, lua):
    args = ["o", '{"external_id":"o"}', "backfill", "0", "", "create_order", "tk1", 30, "d1"]
    assert lua("register", registering(keys, "o"), args) == [1, b"", b"create_order"]
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["step"], stored["lane"], stored["ticket"]) == ("queued", "create_order",
                                                                                   "backfill", "tk1")
    assert stored["created_at"] == stored["updated_at"] and stored["email_digest"] == "d1"
    assert members(redis_client, keys.status_key("queued")) == {"o"}
    assert members(redis_client, keys.email_key("d1")) == {"o"}
    assert redis_client.hgetall(keys.lanes_key) == {b"backfill:queued": b"1"}
    assert abs(redis_client.zscore(keys.watch_key, "o") - (now(redis_client) + 30)) < 2
    assert lua("register", registering(keys, "o"), args) == [0, b"queued", b""]
    # Sent again (forced) in the other lane with another email: it leaves the first email's set and lane.
    again = ["o", "{}", "live", "1", "", "create_order", "tk2", 30, "d2"]
    assert lua("register", registering(keys, "o"), again) == [1, b"queued", b"create_order"]
    assert members(redis_client, keys.email_key("d1")) == set() and members(redis_client, keys.email_key("d2")) == {"o"}
    assert redis_client.hgetall(keys.lanes_key) == {b"backfill:queued": b"0", b"live:queued": b"1"}
    assert lua("register", registering(keys, "o"), ["o", "{}", "live", "1", "", "create_order", "tk3", 30, ""])
    assert members(redis_client, keys.email_key("d2")) == set() and "email_digest" not in fields(redis_client, keys, "o")


def test_register_resumes_a_failed_order_at_its_failed_step_and_never_a_cancelled_one(redis_client, keys, lua):
    seed(redis_client, keys, "f", status="failed", error_step="record_payment", error="refused", **{"r:order_id": "7"})
    args = ["f", "{}", "live", "0", "", "create_order", "tk2", 30, ""]
    assert lua("register", registering(keys, "f"), args) == [1, b"failed", b"record_payment"]
    stored = fields(redis_client, keys, "f")
    assert "error" not in stored and stored["r:order_id"] == "7" and stored["status"] == "queued"
    assert members(redis_client, keys.status_key("failed")) == set()
    seed(redis_client, keys, "c", status="cancelled")
    forced = ["c", "{}", "live", "1", "", "create_order", "tk3", 30, ""]
    assert lua("register", registering(keys, "c"), forced) == [0, b"cancelled", b""]


def test_claim_takes_the_lease_and_marks_a_chain_step_running(redis_client, keys, lua):
    order_keys = [*machine(keys, "o"), lease(keys, "o")]
    steps = "create_order,add_items,record_payment"
    assert lua("claim", order_keys, ["o", "add_items", "run1", 5000, "tk", steps]) == [b"missing", b"", b""]
    seed(redis_client, keys, "o", status="waiting", step="add_items", ticket="tk", lane="backfill", parked_until="1",
         parked_reason="rate limit")
    assert lua("claim", order_keys, ["o", "add_items", "run1", 5000, "old", steps]) == [b"stale", b"waiting",
                                                                                        b"backfill"]
    assert lua("claim", order_keys, ["o", "create_order", "run1", 5000, "tk", steps])[0] == b"stale"  # behind
    assert lua("claim", order_keys, ["o", "add_items", "run1", 5000, "tk", steps]) == [b"ok", b"waiting",
                                                                                       b"backfill"]
    assert redis_client.get(lease(keys, "o")) == b"run1" and 4000 < redis_client.pttl(lease(keys, "o")) <= 5000
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["attempts"]) == ("running", "1") and "parked_until" not in stored
    assert stored["updated_at"] == stored["step_started_at"] and "parked_reason" not in stored
    assert members(redis_client, keys.status_key("running")) == {"o"}
    assert abs(redis_client.zscore(keys.watch_key, "o") - (now(redis_client) + 6)) < 2  # lease + 1 s
    assert lua("claim", order_keys, ["o", "add_items", "run2", 5000, "tk", steps])[0] == b"busy"


def test_claim_of_a_step_sent_on_its_own_leaves_the_status_and_watches_a_finished_order(redis_client, keys, lua):
    seed(redis_client, keys, "d", status="done", ticket="tk")
    claimed = lua("claim", [*machine(keys, "d"), lease(keys, "d")],
                  ["d", "record_payment", "run1", 5000, "", "create_order,record_payment"])
    assert claimed == [b"ok", b"done", b"live"] and fields(redis_client, keys, "d")["status"] == "done"
    assert abs(redis_client.zscore(keys.watch_key, "d") - (now(redis_client) + 6)) < 2


def _end(lua, keys, ext, token, ticket, verb, *args):
    return lua("end_run", [*machine(keys, ext), lease(keys, ext), keys.done_key],
               [ext, token, ticket, verb, *args])


@pytest.fixture
def running(redis_client, keys):
    """An order `o` running add_items under ticket tk, its lease held by run1."""
    seed(redis_client, keys, "o", status="running", step="add_items", ticket="tk", redrives="2")
    redis_client.set(lease(keys, "o"), "run1", px=5000)
    redis_client.zadd(keys.watch_key, {"o": 1})
    return "o"


def test_end_run_advance_queues_the_next_step_and_starts_redrives_over(redis_client, keys, lua, running):
    assert _end(lua, keys, "o", "run1", "tk", "advance", "record_payment", 60) == 1
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["step"], stored["redrives"]) == ("queued", "record_payment", "0")
    assert not redis_client.exists(lease(keys, "o"))
    assert abs(redis_client.zscore(keys.watch_key, "o") - (now(redis_client) + 60)) < 2


def test_end_run_retry_queues_the_same_step_and_keeps_redrives(redis_client, keys, lua, running):
    assert _end(lua, keys, "o", "run1", "tk", "retry", "add_items", 10) == 1
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["step"], stored["redrives"]) == ("queued", "add_items", "2")
    assert members(redis_client, keys.status_key("queued")) == {"o"}


def test_end_run_park_waits_until_a_time(redis_client, keys, lua, running):
    until = now(redis_client) + 3600
    assert _end(lua, keys, "o", "run1", "tk", "park", "add_items", until, "daily quota") == 1
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["parked_reason"]) == ("waiting", "daily quota")
    assert redis_client.zscore(keys.watch_key, "o") == pytest.approx(until)


def test_end_run_finish_marks_done_in_the_done_index_and_stops_watching(redis_client, keys, lua, running):
    assert _end(lua, keys, "o", "run1", "tk", "finish") == 1
    stored = fields(redis_client, keys, "o")
    assert stored["status"] == "done" and "step" not in stored
    assert redis_client.zscore(keys.done_key, "o") == pytest.approx(float(stored["done_at"]))
    assert redis_client.zscore(keys.watch_key, "o") is None
    assert members(redis_client, keys.status_key("done")) == {"o"}


def test_end_run_fail_records_the_error_and_a_single_step_keeps_the_first_failure(redis_client, keys, lua, running):
    redis_client.hset(keys.order_key("o"), mapping={"single": "record_payment", "parked_until": "1"})
    assert _end(lua, keys, "o", "run1", "tk", "fail", "Keap refused", "add_items", "keap") == 1
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["error"], stored["error_step"], stored["error_kind"]) == (
        "failed", "Keap refused", "add_items", "keap")
    assert "single" not in stored and "parked_until" not in stored
    assert redis_client.zscore(keys.watch_key, "o") is None
    redis_client.hset(keys.order_key("o"), "single", "record_payment")
    assert _end(lua, keys, "o", "", "", "fail", "later", "record_payment", "keap") == 1
    stored = fields(redis_client, keys, "o")
    assert (stored["error"], stored["error_step"]) == ("Keap refused", "add_items") and "single" not in stored


def test_end_run_finish_single_clears_the_pending_step_of_a_finished_order(redis_client, keys, lua):
    seed(redis_client, keys, "d", status="done", single="record_payment", ticket="tk")
    redis_client.zadd(keys.watch_key, {"d": 1})
    assert _end(lua, keys, "d", "run1", "", "finish_single", "add_items") == 1  # another step: kept
    assert fields(redis_client, keys, "d")["single"] == "record_payment"
    assert _end(lua, keys, "d", "run1", "", "finish_single", "record_payment") == 1
    assert "single" not in fields(redis_client, keys, "d") and redis_client.zscore(keys.watch_key, "d") is None


def test_watch_single_adds_each_step_once_and_finish_single_takes_out_only_its_own(redis_client, keys, lua):
    seed(redis_client, keys, "d", status="done", ticket="tk")
    watch = [keys.order_key("d"), keys.watch_key]
    assert lua("watch_single", watch, ["d", "record_payment", 60]) == b"record_payment"
    assert lua("watch_single", watch, ["d", "set_custom_fields", 60]) == b"record_payment set_custom_fields"
    assert lua("watch_single", watch, ["d", "record_payment", 60]) == b"record_payment set_custom_fields"
    assert redis_client.zscore(keys.watch_key, "d") is not None
    assert _end(lua, keys, "d", "run1", "", "finish_single", "record_payment") == 1
    assert fields(redis_client, keys, "d")["single"] == "set_custom_fields"
    assert redis_client.zscore(keys.watch_key, "d") is not None  # the other one is still seen through
    assert _end(lua, keys, "d", "run1", "", "finish_single", "set_custom_fields") == 1
    assert "single" not in fields(redis_client, keys, "d") and redis_client.zscore(keys.watch_key, "d") is None


def test_end_run_release_only_gives_the_lease_up(redis_client, keys, lua, running):
    before = fields(redis_client, keys, "o")
    assert _end(lua, keys, "o", "run1", "", "release") == 1
    after = fields(redis_client, keys, "o")
    assert after.pop("updated_at") and after == before
    assert not redis_client.exists(lease(keys, "o")) and redis_client.zscore(keys.watch_key, "o") == 1


def test_end_run_under_another_ticket_or_on_a_cancelled_order_moves_nothing(redis_client, keys, lua, running):
    assert _end(lua, keys, "o", "run1", "newer", "finish") == 0
    assert fields(redis_client, keys, "o")["status"] == "running" and not redis_client.exists(lease(keys, "o"))
    redis_client.hset(keys.order_key("o"), "status", "cancelled")
    assert _end(lua, keys, "o", "", "", "fail", "x", "add_items", "keap") == 0
    assert fields(redis_client, keys, "o")["status"] == "cancelled"


def test_cancel_is_final_and_stops_watching(redis_client, keys, lua, running):
    cancel_keys = machine(keys, "o")
    assert lua("cancel", machine(keys, "x"), ["x"]) is None
    redis_client.hset(keys.order_key("o"), "single", "record_payment")
    assert lua("cancel", cancel_keys, ["o"]) == b"running"
    assert "single" not in fields(redis_client, keys, "o")
    assert members(redis_client, keys.status_key("cancelled")) == {"o"}
    assert members(redis_client, keys.status_key("running")) == set()
    assert redis_client.zscore(keys.watch_key, "o") is None


# the keeper -----------------------------------------------------------------------------------------------
def test_take_due_takes_a_due_order_once_and_says_whether_its_lease_lives(redis_client, keys, lua, running):
    due_keys = [keys.order_key("o"), keys.watch_key, lease(keys, "o")]
    taken = lua("take_due", due_keys, ["o", 30])
    assert taken[:7] == [b"running", b"add_items", b"", b"", b"", b"2", b""] and taken[7] == 1
    assert abs(float(taken[8]) - now(redis_client)) < 2
    assert abs(redis_client.zscore(keys.watch_key, "o") - (now(redis_client) + 30)) < 2
    assert lua("take_due", due_keys, ["o", 30]) is None  # not due again before then


def test_resend_queues_the_order_under_a_new_ticket_unless_it_moved(redis_client, keys, lua, running):
    resend_keys = machine(keys, "o")
    redis_client.hset(keys.order_key("o"), "parked_until", "1")
    assert lua("resend", resend_keys, ["o", "queued", "tk2", 60, "1"]) is None  # it is running, not queued
    assert lua("resend", resend_keys, ["o", "running", "tk2", 60, "1"]) == b"tk2"
    stored = fields(redis_client, keys, "o")
    assert (stored["status"], stored["ticket"], stored["redrives"], stored["resends"]) == ("queued", "tk2", "3", "1")
    assert "parked_until" not in stored and abs(float(stored["updated_at"]) - now(redis_client)) < 2
    assert abs(redis_client.zscore(keys.watch_key, "o") - (now(redis_client) + 60)) < 2


# effects and leases ---------------------------------------------------------------------------------------
def test_mark_intent_writes_only_under_the_lease_and_note_check_counts(redis_client, keys, lua, running):
    intent_keys = [keys.order_key("o"), lease(keys, "o")]
    assert lua("mark_intent", intent_keys, ["payment:1", "someone-else"]) == 0
    assert "i:payment:1" not in fields(redis_client, keys, "o")
    assert lua("mark_intent", intent_keys, ["payment:1", "run1"]) == 1
    intent = json.loads(fields(redis_client, keys, "o")["i:payment:1"])
    assert intent["checks"] == 0 and abs(intent["at"] - now(redis_client)) < 2
    assert lua("note_check", [keys.order_key("o")], ["payment:2"]) == 0
    assert lua("note_check", [keys.order_key("o")], ["payment:1"]) == 1
    assert lua("note_check", [keys.order_key("o")], ["payment:1"]) == 2
    assert json.loads(fields(redis_client, keys, "o")["i:payment:1"])["checks"] == 2


def test_clear_intent_drops_only_the_callers_own_intent(redis_client, keys, lua, running):
    assert lua("mark_intent", [keys.order_key("o"), lease(keys, "o")], ["order_id", "run1"]) == 1
    assert json.loads(fields(redis_client, keys, "o")["i:order_id"])["by"] == "run1"
    assert lua("clear_intent", [keys.order_key("o")], ["order_id", "run0"]) == 0  # another run's: it stays
    assert lua("clear_intent", [keys.order_key("o")], ["payment:1", "run1"]) == 0
    assert lua("clear_intent", [keys.order_key("o")], ["order_id", "run1"]) == 1
    assert "i:order_id" not in fields(redis_client, keys, "o")


def test_record_writes_only_under_the_lease_and_keeps_a_late_answer_as_an_orphan(redis_client, keys, lua, running):
    record_keys = [keys.order_key("o"), lease(keys, "o"), keys.orphans_key, keys.keap_ids_key, keys.contact_key("")]
    redis_client.hset(keys.order_key("o"), "i:order_id", "{}")
    assert lua("record", record_keys, ["run1", "o", "order_id", "order_id", "7", "keap_total", "9.00"]) == 1
    stored = fields(redis_client, keys, "o")
    assert (stored["r:order_id"], stored["r:keap_total"]) == ("7", "9.00") and "i:order_id" not in stored
    # Another run holds the lease now: nothing is recorded; a write's answer the ledger has not is an orphan,
    assert lua("record", record_keys, ["run0", "o", "order_id", "order_id", "8", "keap_total", "9.00"]) == -1
    assert fields(redis_client, keys, "o")["r:order_id"] == "7"
    (orphan, at), = redis_client.zrange(keys.orphans_key, 0, -1, withscores=True)
    orphan = json.loads(orphan)
    assert orphan.pop("at") == pytest.approx(at, abs=0.01) and abs(at - now(redis_client)) < 2
    assert orphan == {"external_id": "o", "what": "order_id", "results": {"order_id": "8", "keap_total": "9.00"}}
    # the same ids the run that took over found are not, and neither is a record that answers no write.
    assert lua("record", record_keys, ["run0", "o", "order_id", "order_id", "7", "keap_total", "9.00"]) == 0
    assert lua("record", record_keys, ["run0", "o", "", "contact_id", "3"]) == 0
    assert redis_client.zcard(keys.orphans_key) == 1 and "r:contact_id" not in fields(redis_client, keys, "o")
    assert redis_client.hgetall(keys.keap_ids_key) == {b"order:7": b"o"}  # indexed when recorded, not as an orphan
    assert lua("record", record_keys, ["run1", "o", "", "contact_id", "3", "order_id", "8"]) == 1
    assert redis_client.hgetall(keys.keap_ids_key) == {b"order:8": b"o"}
    assert members(redis_client, keys.contact_key("3")) == {"o"}


def test_a_lease_is_renewed_and_released_only_by_its_holder(redis_client, keys, lua, running):
    key = lease(keys, "o")
    assert lua("lease_renew", [key], ["other", 60000]) == 0 and redis_client.pttl(key) <= 5000
    assert lua("lease_renew", [key], ["run1", 60000]) == 1 and redis_client.pttl(key) > 5000
    assert lua("lease_release", [key], ["other"]) == 0 and redis_client.exists(key)
    assert lua("lease_release", [key], ["run1"]) == 1 and not redis_client.exists(key)


# retention ------------------------------------------------------------------------------------------------
def test_compact_keeps_the_keap_ids_of_a_done_order_and_leaves_the_others(redis_client, keys, lua):
    seed(redis_client, keys, "old", status="done", message="{}", error="x", lane="backfill", email_digest="d", **{
        "r:order_id": "1", "r:contact_id": "5", "r:payment:a": "2", "r:custom_fields": "v", "i:payment:b": "{}"})
    redis_client.sadd(keys.email_key("d"), "old", "other")
    redis_client.sadd(keys.contact_key("5"), "old")
    redis_client.hset(keys.keap_ids_key, mapping={"order:1": "old", "order:2": "other"})
    seed(redis_client, keys, "busy", status="done", single="record_payment")
    seed(redis_client, keys, "back", status="queued")
    redis_client.zadd(keys.done_key, {"old": 100, "busy": 100, "back": 100, "new": 5000})
    compact = lambda ext: lua("compact", [keys.order_key(ext), keys.done_key, keys.email_key(""),  # noqa: E731
                                          keys.keap_ids_key, keys.contact_key("")], [ext, 1000, 4000])
    assert compact("old") == 1
    stored = fields(redis_client, keys, "old")
    assert stored.pop("compacted_at") and stored == {"status": "done", "done_at": "100", "r:order_id": "1",
                                                     "r:contact_id": "5", "r:payment:a": "2", "lane": "backfill"}
    assert members(redis_client, keys.email_key("d")) == {"other"} and not redis_client.exists(keys.contact_key("5"))
    assert redis_client.hgetall(keys.keap_ids_key) == {b"order:2": b"other"}
    assert compact("busy") == 0 and redis_client.zscore(keys.done_key, "busy") == 4000  # looked at again later
    assert compact("back") == 0 and redis_client.zscore(keys.done_key, "back") is None  # not done any more
    assert compact("new") == 0 and redis_client.zscore(keys.done_key, "new") == 5000  # not due
    assert {m.decode() for m in redis_client.zrange(keys.done_key, 0, -1)} == {"busy", "new"}


def test_count_lanes_counts_the_status_sets_by_each_order_s_lane(redis_client, keys, lua):
    seed(redis_client, keys, "a", status="done", lane="backfill")
    seed(redis_client, keys, "b", status="done")  # no lane field: live
    seed(redis_client, keys, "c", status="failed", lane="live")
    redis_client.hset(keys.lanes_key, "live:queued", 5)  # a stale count goes
    out = lua("count_lanes", [keys.status_key(""), keys.order_key(""), keys.lanes_key], ["queued", "done", "failed"])
    assert dict(zip(out[::2], out[1::2])) == {b"backfill:done": 1, b"live:done": 1, b"live:failed": 1}
    assert redis_client.hgetall(keys.lanes_key) == {b"backfill:done": b"1", b"live:done": b"1", b"live:failed": b"1"}
