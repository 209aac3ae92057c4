"""A Redis that lost writes, found before a write trusts the ledger (check_redis.lua, lost_write.lua), and the audit
index (take_audits.lua): each script run directly on the real Redis, its effect read back from the keys; and what a
Redis configuration promises."""
from __future__ import annotations

import json

import pytest

from tests.worker.ledger.test_lua import fields, now
from worker.ledger import Durability, Ledger


@pytest.fixture
def ledger(redis_client, key_prefix):
    return Ledger(redis_client, key_prefix)


@pytest.fixture
def lua(redis_client):
    from worker.ledger import scripts

    return lambda name, keys, args: redis_client.register_script(scripts.source(name))(keys=keys, args=args)


def check(lua, ledger, seen_run="", seen_epoch=""):
    return lua("check_redis", [ledger.identity_key, ledger.losses_key, ledger.status_key("")], [seen_run, seen_epoch])


def test_check_redis_records_the_redis_it_sees_and_finds_a_restart_a_wipe_and_a_step_back(redis_client, ledger, lua):
    run = redis_client.info("server")["run_id"]
    assert check(lua, ledger) == [run.encode(), 1, b"", b""]  # a new ledger: its Redis recorded, no loss
    assert check(lua, ledger, run, "1") == [run.encode(), 1, b"", b""]
    redis_client.hset(ledger.identity_key, "run_id", "0123456789abcdef")  # as written by the Redis before a restart
    got = check(lua, ledger, run, "1")
    assert got[1] == 2 and b"restarted or failed over (run id 01234567 ->" in got[3] and float(got[2]) > 0
    assert check(lua, ledger, run, "2")[3] == b""  # found once: the next check agrees
    got = check(lua, ledger, run, "5")  # this process saw epoch 5: the ledger went back in time
    assert got[1] == 6 and b"earlier state" in got[3]
    redis_client.delete(ledger.identity_key)
    assert b"lost its record of Redis" in check(lua, ledger, run, "6")[3]  # emptied, and this process knew it
    assert [loss["epoch"] for loss in ledger.losses()] == [7, 6, 2]


def test_a_ledger_with_orders_but_no_record_of_its_redis_counts_as_a_loss(redis_client, ledger, lua):
    redis_client.sadd(ledger.status_key("queued"), "o1")  # restored from before the record existed
    assert b"no record of the Redis" in check(lua, ledger)[3]


def lost_write(lua, ledger, ext, what="order_id", grace=60, looked=2, audit_after=900):
    return lua("lost_write", [ledger.identity_key, ledger.losses_key, ledger.status_key(""), ledger.order_key(ext),
                              ledger.audit_key], [what, "", "", grace, looked, audit_after, ext])


def test_lost_write_turns_a_write_of_an_order_from_before_a_loss_into_an_intent_once(redis_client, ledger, lua):
    t = now(redis_client)
    redis_client.hset(ledger.order_key("old"), mapping={"status": "queued", "created_at": t - 100})
    redis_client.hset(ledger.order_key("new"), mapping={"status": "queued", "created_at": t + 1000})
    assert lost_write(lua, ledger, "old")[4] == b""  # no loss yet: nothing to look for
    redis_client.hset(ledger.identity_key, "run_id", "0123456789abcdef")
    got = lost_write(lua, ledger, "old")
    loss_at = got[2]
    assert json.loads(got[4]) == {"at": float(loss_at), "checks": 2}
    stored = fields(redis_client, ledger, "old")
    assert json.loads(stored["i:order_id"])["at"] == float(loss_at) and stored["x:order_id"] == loss_at.decode()
    assert stored["audit"] == "order_id" and redis_client.zscore(ledger.audit_key, "old") >= t + 900
    redis_client.hdel(ledger.order_key("old"), "i:order_id")  # Keap refused the write: nothing to reconcile
    assert lost_write(lua, ledger, "old")[4] == b""  # looked up once for this loss, not again
    assert lost_write(lua, ledger, "new", grace=60)[4] == b""  # registered long after the loss and its grace
    assert lost_write(lua, ledger, "gone")[4] == b""  # not in the ledger


def test_an_order_with_a_lost_answer_goes_to_the_audit_with_each_uncertain_write(redis_client, ledger, lua):
    t = now(redis_client)
    redis_client.hset(ledger.order_key("o"), mapping={"status": "running", "created_at": t,
                                                      "i:payment:p1": json.dumps({"at": t, "checks": 0})})
    check(lua, ledger)
    lost_write(lua, ledger, "o", "payment:p1")
    lost_write(lua, ledger, "o", "payment:p1")
    redis_client.hset(ledger.order_key("o"), "i:subscription:0", json.dumps({"at": t, "checks": 0}))
    lost_write(lua, ledger, "o", "subscription:0")
    assert fields(redis_client, ledger, "o")["audit"] == "payment:p1,subscription:0"
    assert lost_write(lua, ledger, "o", "order_id")[4] == b""  # no intent, no loss: not audited for it


def test_take_audits_hands_out_what_is_due_and_holds_it(redis_client, ledger, lua):
    t = now(redis_client)
    redis_client.zadd(ledger.audit_key, {"due": t - 1, "later": t + 600})
    redis_client.hset(ledger.order_key("due"), "audit", "order_id,payment:p1")
    assert lua("take_audits", [ledger.audit_key, ledger.order_key("")], [10, 120]) == [b"due", b"order_id,payment:p1"]
    assert redis_client.zscore(ledger.audit_key, "due") >= t + 119
    assert ledger.take_audits(10, 120) == []  # held: another keeper skips it
    ledger.audit_done("due", "clean")
    assert redis_client.zscore(ledger.audit_key, "due") is None and ledger.get("due").audit_result == "clean"


@pytest.mark.parametrize("version, aof, fsync, replicas, on_disk, waitaof", [
    ("7.0.15", True, "everysec", 0, False, False),  # this machine's Redis with compose's old setting
    ("7.0.15", True, "always", 0, True, False),
    ("7.2.4", True, "everysec", 0, True, True),
    ("7.4.0", False, "everysec", 0, False, False),  # WAITAOF needs appendonly yes
    ("7.2.4", True, None, 1, True, True),  # CONFIG refused (managed Redis): WAITAOF still works
    ("7.0.15", True, None, 0, False, False),
])
def test_what_a_redis_configuration_promises(version, aof, fsync, replicas, on_disk, waitaof):
    found = Durability.of(version, aof, fsync, replicas)
    assert (found.on_disk, found.waitaof, found.replicas) == (on_disk, waitaof, replicas)
    assert ("intents on disk" if on_disk else "intents not on disk") in found.promise


def test_await_durable_waits_for_nothing_this_redis_cannot_give(ledger):
    assert not ledger.durability().waitaof  # the shared test Redis: 7.0, no AOF
    ledger.await_durable("o", "order_id")  # returns at once
