"""End-to-end fixtures: the sandbox over HTTP, a real in-process Celery worker on real Redis, own queues/keys."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.conftest import REDIS_URL, SANDBOX_KEY, conformance_spec, spec_problems

# The Celery app reads its broker and queue names at import, so they are set before anything imports it.
RUN = f"test-{uuid.uuid4().hex[:8]}"
os.environ.update({
    "REDIS_URL": REDIS_URL,
    "KEY_PREFIX": RUN,
    "LIVE_QUEUE": f"{RUN}.live",
    "BACKFILL_QUEUE": f"{RUN}.backfill",
    "KEAP_API_KEY": SANDBOX_KEY,
    "RATE_LIMITS": "off",
    "MAX_RETRIES": "5",
    "RETRY_BACKOFF_CAP_SECONDS": "2",
})


@pytest.fixture(scope="session")
def keap_sandbox():
    """One sandbox for the pipeline tests; everything the worker sent and got back must conform to the spec."""
    from sandbox.server import Sandbox

    with Sandbox(port=0, api_key=SANDBOX_KEY, limits="off", record=True) as sb:
        yield sb
    problems = spec_problems(conformance_spec(), sb.exchanges)
    assert not problems, "pipeline traffic violates Keap's OpenAPI spec:\n  " + "\n  ".join(problems[:20])


@pytest.fixture(scope="session")
def worker(keap_sandbox, redis_client):
    """A real Celery worker (thread pool, 4 threads) consuming this run's queues, against the sandbox."""
    os.environ["KEAP_BASE_URL"] = keap_sandbox.base_url
    from celery.contrib.testing.worker import start_worker

    from worker.app import app
    from worker.settings import get_settings
    from worker.tasks import context

    get_settings.cache_clear()
    context.cache_clear()
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                      queues=[f"{RUN}.live", f"{RUN}.backfill"], shutdown_timeout=30, loglevel="WARNING"):
        yield context()
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


def wait_until_finished(ledger, external_ids, timeout=90.0):
    ids = list(external_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = ledger.statuses(ids)
        if all(s not in ("queued", "running") for s in statuses.values()):
            return statuses
        time.sleep(0.1)
    raise AssertionError(f"orders still in flight after {timeout}s: {ledger.statuses(ids)}")
