"""Issue 16, cases 1 and 4, with real `celery worker` subprocesses and the sandbox over HTTP: a Redis restarted from
an AOF copied before its last writes (its own redis-server on a spare port) makes no duplicate in Keap, and a write
Keap applies after the settle time and the lookups leaves no orphan nobody hears of."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from admin.demo import stop
from tests.conftest import SANDBOX_KEY
from tests.e2e.conftest import in_keap, order
from tests.e2e.test_liveness import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "orders.jsonl"


def mixed_orders(run_id: str) -> list[dict]:
    """Cash orders, stored-card charges and subscriptions (examples/orders.jsonl), under this run's ids."""
    rows = {row["external_id"]: row for row in map(json.loads, EXAMPLES.read_text().splitlines())}
    picked = [rows["shop-1012"], rows["shop-1014"], rows["shop-1006"]]
    made = [{**row, "external_id": f"{run_id}-{row['external_id']}"} for row in picked]
    return made + [order(f"{run_id}-cash-{i}") for i in range(2)] + [
        {**rows["shop-1012"], "external_id": f"{run_id}-card-2"}]


def subscriptions_in_keap(sandbox, ext: str) -> int:
    with sandbox.store.lock:
        return sum(ext in s["custom_fields"].values() for s in sandbox.store.subscriptions.values())


class OwnRedis:
    """A redis-server of the test's own, on a spare port, with an AOF in `directory`."""

    def __init__(self, directory: Path, *options: str):
        self.port = 26400 + os.getpid() % 500
        self.directory, self.options, self.proc = directory, options, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", *self.options],
            stdout=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", 10, "own redis-server")

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def copy_aof(self, to: Path) -> None:
        shutil.copytree(self.directory / "appendonlydir", to)

    def restore_aof(self, copy: Path) -> None:
        shutil.rmtree(self.directory / "appendonlydir")
        shutil.copytree(copy, self.directory / "appendonlydir")


def fresh_broker_connections() -> None:
    """Drop this process's broker connections (and producers) to a Redis that went away: the next send connects
    to the broker configured now."""
    from kombu import pools

    from worker.app import app

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def own_redis(tmp_path):
    (tmp_path / "data").mkdir()
    server = OwnRedis(tmp_path / "data", "--appendfsync", "everysec")
    server.start()
    yield server
    if server.proc.poll() is None:
        server.crash()
    fresh_broker_connections()


def test_redis_restarted_from_an_aof_copied_after_the_backfill_was_sent_makes_no_duplicate(fleet, e2e_sandbox,
                                                                                             own_redis, tmp_path):
    run = fleet(REDIS_URL=own_redis.url, REQUIRE_PERSISTENT_REDIS="true", LEDGER_DURABILITY="detect")
    orders = mixed_orders(run.run_id)
    ids = [o["external_id"] for o in orders]
    for one in orders:
        assert run.producer.enqueue_order(one, "backfill").sent
    time.sleep(1.2)  # appendfsync everysec: the sends are in the AOF
    own_redis.copy_aof(tmp_path / "aof-after-send")
    before = [run.worker("before"), run.keeper()]
    run.wait(ids, 90)  # Keap applied everything
    for proc in before:
        stop(proc, signal.SIGKILL)  # the host goes down ...
    applied = {ext: (in_keap(e2e_sandbox, ext), subscriptions_in_keap(e2e_sandbox, ext)) for ext in ids}
    own_redis.crash()  # ... with Redis; it comes back from the AOF as it was right after the sends
    own_redis.restore_aof(tmp_path / "aof-after-send")
    own_redis.start()
    assert set(run.ledger.statuses(ids).values()) == {"queued"}  # the ledger forgot every write
    for one in orders:  # the backfill, run again, finds them queued
        run.producer.enqueue_order(one, "backfill")
    fresh_broker_connections()
    run.worker("after")
    run.keeper()
    run.wait(ids, 120)
    assert {ext: (in_keap(e2e_sandbox, ext), subscriptions_in_keap(e2e_sandbox, ext)) for ext in ids} == applied
    assert all(pairs[0][0] == 1 for pairs in applied.values())
    assert "restarted or failed over" in run.ledger.losses()[0]["why"]


def test_a_write_keap_applies_after_the_lookups_is_deleted_when_unpaid_and_reported_when_paid(fleet, e2e_sandbox):
    run = fleet(SETTLE_SECONDS="2", SETTLE_CHECKS="2", AUDIT_AFTER_SECONDS="14")
    unpaid, paid = f"{run.run_id}-unpaid", f"{run.run_id}-paid"
    e2e_sandbox.set_faults(late_commit_rate=1.0, late_commit_seconds=9, routes=["POST /rest/v2/orders"])
    run.keeper()
    run.worker()
    for ext in (unpaid, paid):
        run.producer.enqueue_order(order(ext), "live")
    wait_for(lambda: all("order_id" in run.ledger.get(ext).intents for ext in (unpaid, paid)), 30, "lost creates")
    e2e_sandbox.set_faults()  # the writes after the lookups are answered
    run.wait([unpaid, paid], 60)
    assert in_keap(e2e_sandbox, unpaid) == (1, 1)
    wait_for(lambda: in_keap(e2e_sandbox, paid)[0] == 2, 30, "the late commit")  # Keap applies the first create now
    late = next(o for o in orders_of(e2e_sandbox, paid) if o != run.ledger.get(paid).results["order_id"])
    requests.post(f"{e2e_sandbox.base_url}/rest/v2/orders/{late}/payments", headers={"X-Keap-API-Key": SANDBOX_KEY},
                  json={"payment_amount": 5.0, "payment_method_type": "Cash", "apply_to_commissions": False},
                  timeout=10).raise_for_status()  # someone took a payment on it meanwhile
    wait_for(lambda: run.ledger.get(unpaid).audit_result and run.ledger.get(paid).audit_result, 60, "the audits")
    assert in_keap(e2e_sandbox, unpaid) == (1, 1)  # the late, unpaid order was deleted
    assert run.ledger.get(unpaid).audit_result.startswith("deleted Keap order")
    assert in_keap(e2e_sandbox, paid)[0] == 2 and run.ledger.get(paid).audit_result == "reported"
    reports = run.ledger.audit_reports()
    assert [r[0] for r in reports] == [paid] and f"Keap order {late} carries this external id" in reports[0][2]


def orders_of(sandbox, ext: str) -> list[str]:
    with sandbox.store.lock:
        return [str(o["id"]) for o in sandbox.store.orders.values() if ext in o["custom_fields"].values()]


@pytest.mark.parametrize("fsync, durability, refused", [("everysec", "disk", True), ("everysec", "detect", False),
                                                         ("always", "disk", False)])
def test_workers_refuse_a_redis_that_can_lose_an_intent_unless_told_to_accept_it(tmp_path, fsync, durability, refused):
    from worker.app import readiness_problems
    from worker.settings import Settings

    server = OwnRedis(tmp_path, "--appendfsync", fsync)
    server.start()
    try:
        problems = readiness_problems(Settings(keap_api_key=SANDBOX_KEY, redis_url=server.url,
                                               ledger_durability=durability))
    finally:
        server.crash()
    assert any("Redis can lose the intent a Keap write rests on" in p for p in problems) == refused
    assert not [p for p in problems if "can lose" not in p]  # nothing else is wrong with it
