"""Subprocess fleets: real `celery worker` processes (and a keeper with beat) on their own queues and key prefix,
against a sandbox over HTTP — for the tests that kill workers and wait for the system to heal."""
from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import pytest

from tests.conftest import REDIS_URL


class Fleet:
    def __init__(self, sandbox, redis_client, **overrides: str):
        from admin.demo import run_env
        from producers.enqueue import Producer
        from worker.app import configure
        from worker.settings import Settings

        self.sandbox, self.redis = sandbox, redis_client
        self.run_id = f"e2e-{uuid.uuid4().hex[:8]}"
        self.env = run_env(sandbox.base_url, REDIS_URL, self.run_id, **{
            "RATE_LIMITS": "off", "LEASE_SECONDS": "3", "SETTLE_SECONDS": "3", "QUEUED_STALL_SECONDS": "10",
            "KEEPER_INTERVAL_SECONDS": "1", "BROKER_RETRY_MAX_SECONDS": "3", "RETRY_BACKOFF_CAP_SECONDS": "2",
            "QUOTA_RESET_SPREAD_SECONDS": "1", **overrides})
        self.settings = Settings(**{name.lower(): value for name, value in self.env.items()})
        configure(self.settings)
        self.producer = Producer(self.settings)
        self.ledger = self.producer.ledger
        self._stack = ExitStack()

    def worker(self, name: str = "w", *, queues: str | None = None, pool: str = "threads", concurrency: int = 2,
               beat: bool = False, env: dict | None = None, **options):
        """A worker subprocess; `options` go to admin.demo.worker_process (errors=, loglevel=, events=)."""
        from admin.demo import worker_answers, worker_process

        proc = self._stack.enter_context(worker_process({**self.env, **(env or {})}, queues=queues or ",".join(
            (self.settings.live_queue, self.settings.backfill_queue)), name=f"{self.run_id}-{name}", pool=pool,
            concurrency=concurrency, beat=beat, **options))
        assert worker_answers(proc), f"worker {name} did not start"
        return proc

    def keeper(self):
        """The keeper as in production: Celery beat plus a worker on the keeper's queue."""
        return self.worker("keeper", queues=self.settings.keeper_queue, concurrency=1, beat=True)

    def wait(self, ids, timeout: float, statuses=("done",)) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.ledger.statuses(ids)
            if all(s in statuses for s in found.values()):
                return found
            time.sleep(0.2)
        raise AssertionError(f"after {timeout}s: {self.ledger.statuses(ids)}\n" + "\n".join(map(self.why, ids)))

    def why(self, ext: str) -> str:
        """What an unfinished order waits for, for a failing test's message (ids and times only, no customer
        data): its status, step, attempts and re-sends, the message's holder, and when the keeper looks next."""
        names = ("status", "step", "attempts", "resends", "redrives", "ticket", "holder", "parked_reason", "updated_at")
        fields = {name: value.decode() for name, value in zip(names, self.ledger.redis.hmget(
            self.ledger.order_key(ext), names)) if value is not None}
        look = self.ledger.redis.zscore(self.ledger.watch_key, ext)
        now = self.ledger.now()
        holder = self.ledger.holder(ext)
        return (f"{ext}: {fields}; keeper looks in {look - now:.1f}s" if look else f"{ext}: {fields}; not watched") \
            + f"; holder {holder} (now {now:.1f})"

    def close(self):
        self._stack.close()
        for key in self.redis.scan_iter(f"*{self.run_id}*", count=1000):
            self.redis.delete(key)


@pytest.fixture
def e2e_sandbox():
    from sandbox.server import Sandbox

    with Sandbox(port=0, limits="off") as sb:
        yield sb


@pytest.fixture
def fleet(e2e_sandbox, redis_client):
    made = []

    def make(sandbox=None, **overrides):
        made.append(Fleet(sandbox or e2e_sandbox, redis_client, **overrides))
        return made[-1]

    yield make
    for one in made:
        one.close()


def order(ext: str, **overrides) -> dict:
    return {"external_id": ext, "order_time": "2024-03-05T14:22:10Z",
            "customer": {"email": f"{ext}@example.com", "given_name": "Test"},
            "items": [{"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90"},
                      {"type": "SHIPPING", "name": "Post", "unit_price": "5.00"}],
            "payments": [{"amount": "44.80", "method": "Cash"}], **overrides}


def in_keap(sandbox, ext: str) -> tuple[int, int]:
    """(orders carrying this external id, payments on them) as the sandbox's Keap holds them."""
    with sandbox.store.lock:
        orders = [o for o in sandbox.store.orders.values() if ext in o["custom_fields"].values()]
        return len(orders), sum(len(o["payments"]) for o in orders)
