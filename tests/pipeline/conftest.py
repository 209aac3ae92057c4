"""End-to-end fixtures: the sandbox over HTTP, a real in-process Celery worker on real Redis, own queues/keys."""
from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager

import pytest

from tests.conftest import REDIS_URL, SANDBOX_KEY, conformance_spec, spec_problems
from worker.ledger import ACTIVE

# This run's own key prefix and queues on the shared Redis; the CLI tests pass the same values as environment.
RUN = f"test-{uuid.uuid4().hex[:8]}"
ENV = {
    "REDIS_URL": REDIS_URL,
    "KEY_PREFIX": RUN,
    "LIVE_QUEUE": f"{RUN}.live",
    "BACKFILL_QUEUE": f"{RUN}.backfill",
    "KEAP_API_KEY": SANDBOX_KEY,
    "RATE_LIMITS": "off",
    "MAX_RETRIES": "5",
    "RETRY_BACKOFF_CAP_SECONDS": "2",
    # Seconds instead of minutes, so waits for lost answers and stalled orders fit in a test.
    "SETTLE_SECONDS": "2",
    "LEASE_SECONDS": "3",
    "QUEUED_STALL_SECONDS": "20",
    "BROKER_RETRY_MAX_SECONDS": "2",
    "KEEPER_INTERVAL_SECONDS": "0.5",
}


@pytest.fixture(scope="session")
def keap_sandbox():
    """One sandbox for the pipeline tests; everything the worker sent and got back must conform to the spec."""
    from sandbox.server import Sandbox

    with Sandbox(port=0, api_key=SANDBOX_KEY, limits="off", record=True) as sb:
        yield sb
    problems = spec_problems(conformance_spec(), sb.exchanges)
    assert not problems, "pipeline traffic violates Keap's OpenAPI spec:\n  " + "\n  ".join(problems[:20])


@pytest.fixture(scope="session")
def settings(keap_sandbox):
    """This run's settings; the CLI tests see the same through their environment (`cli_env`)."""
    from worker.settings import Settings

    ENV["KEAP_BASE_URL"] = keap_sandbox.base_url
    return Settings(**{name.lower(): value for name, value in ENV.items()})


@pytest.fixture
def cli_env():
    return dict(ENV)


@pytest.fixture(scope="session")
def worker(settings, redis_client):
    """A real Celery worker (thread pool, 4 threads) consuming this run's queues, against the sandbox."""
    from celery.contrib.testing.worker import start_worker

    from worker import context
    from worker.app import app, configure

    configure(settings)
    context.install(settings)
    _, ctx = context.current()
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                      queues=[settings.live_queue, settings.backfill_queue], shutdown_timeout=30, loglevel="WARNING"):
        with keeper_thread(settings, ctx):
            yield ctx
    for key in redis_client.scan_iter(f"*{RUN}*", count=1000):
        redis_client.delete(key)


@pytest.fixture
def ctx(worker):
    """The worker's step context: its KeapClient (to read Keap back) and its Ledger."""
    return worker


@pytest.fixture
def ext():
    """A fresh external id per test, so tests sharing one sandbox and ledger never see each other's orders."""
    return f"t-{uuid.uuid4().hex[:12]}"


@contextmanager
def keeper_thread(settings, ctx):
    """The keeper's pass every KEEPER_INTERVAL_SECONDS, as Celery beat runs it in production."""
    from functools import partial

    from worker import keeper
    from worker.app import send

    stop = threading.Event()

    def loop():
        while not stop.wait(settings.keeper_interval_seconds):
            keeper.tick(ctx.ledger, settings, partial(send, settings))

    thread = threading.Thread(target=loop, name="keeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def wait_until_finished(ledger, external_ids, timeout=90.0):
    ids = list(external_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = ledger.statuses(ids)
        # A step sent on its own for a done or failed order leaves the status as it is until it finishes.
        if all(s not in ACTIVE for s in statuses.values()) and not any(ledger.get(i).single for i in ids):
            return statuses
        time.sleep(0.1)
    raise AssertionError(f"orders still in flight after {timeout}s: {ledger.statuses(ids)}")


@pytest.fixture
def producer(settings, ctx):
    """Sends orders and steps on this run's queues, with the worker's ledger."""
    from producers.enqueue import Producer

    return Producer(settings, ctx.ledger)
