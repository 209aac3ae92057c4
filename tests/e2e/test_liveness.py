"""Every order finishes: workers SIGKILLed mid-step, pool processes killed, messages never sent, the daily quota
used up at 23:59:50 — with real `celery worker` subprocesses, the keeper on Celery beat, and the sandbox."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.e2e.conftest import in_keap, order


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_worker_killed_mid_step_costs_seconds_not_the_visibility_timeout(fleet, e2e_sandbox):
    run = fleet(VISIBILITY_TIMEOUT_SECONDS="3600")  # the broker alone would wait an hour
    run.keeper()
    victim = run.worker("victim")
    e2e_sandbox.set_faults(latency_ms=4000, routes=["POST /rest/v2/orders"])
    ids = [f"{run.run_id}-{i}" for i in range(4)]
    for ext in ids:
        run.producer.enqueue_order(order(ext), "backfill")
    wait_for(lambda: "running" in run.ledger.statuses(ids).values(), 30, "a step running")
    os.killpg(victim.pid, signal.SIGKILL)  # the whole worker: main process and pool
    victim.wait()
    started = time.monotonic()
    run.worker("rescuer")
    run.wait(ids, 90)
    assert time.monotonic() - started < 60
    assert [in_keap(e2e_sandbox, ext) for ext in ids] == [(1, 1)] * 4  # exactly one order and payment each


def test_messages_a_killed_worker_held_come_back_within_a_minute_not_the_stall_time(fleet, e2e_sandbox):
    # The victim holds its orders' messages as retry countdowns (the rate limit makes them wait); the broker would
    # give them back after an hour and the stall rule after 300 s. Its heartbeat stops, so the keeper re-sends them.
    run = fleet(VISIBILITY_TIMEOUT_SECONDS="3600", QUEUED_STALL_SECONDS="300", RATE_LIMITS="4/min",
                BROKER_RETRY_MAX_SECONDS="60", THROTTLE_MAX_BLOCK_SECONDS="1")
    run.keeper()
    victim = run.worker("victim")
    ids = [f"{run.run_id}-h{i}" for i in range(4)]
    for ext in ids:
        run.producer.enqueue_order(order(ext), "live")  # the live lane never blocks long on the limit: it waits

    def held_by_victim():
        # Every order queued with its message held by the victim (a retry's countdown after a first attempt, or
        # prefetched), the keeper's next look at it due within 25 s (the victim received the message and told so).
        now = run.ledger.now()
        states = {ext: run.ledger.get(ext) for ext in ids}
        held = [ext for ext, state in states.items() if state.status == "queued"
                and "victim" in getattr(run.ledger.holder(ext), "worker", "")
                and (run.ledger.redis.zscore(run.ledger.watch_key, ext) or 0) <= now + 25]
        return len(held) == len(ids) and any(state.attempts for state in states.values())

    wait_for(held_by_victim, 60, "every order held by the victim")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    started = time.monotonic()
    run.worker("rescuer", env={"RATE_LIMITS": "off"})
    run.wait(ids, 90)
    assert time.monotonic() - started < 60  # not the stall time (300 s), not the visibility timeout (3600 s)
    assert [in_keap(e2e_sandbox, ext) for ext in ids] == [(1, 1)] * 4


def test_a_killed_pool_process_is_replaced_and_its_order_finishes(fleet, e2e_sandbox):
    run = fleet()
    run.keeper()
    worker = run.worker("prefork", pool="prefork", concurrency=2)
    e2e_sandbox.set_faults(latency_ms=3000, routes=["POST /rest/v2/orders/{order_id}/payments"])
    ext = f"{run.run_id}-p"
    run.producer.enqueue_order(order(ext), "live")
    wait_for(lambda: (run.ledger.get(ext) or None) and run.ledger.get(ext).step == "record_payment"
             and run.ledger.get(ext).status == "running", 30, "the payment step running")
    children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)  # whichever child runs the step dies with it
    run.wait([ext], 90)
    assert in_keap(e2e_sandbox, ext) == (1, 1)


def test_an_order_registered_but_never_sent_is_sent_by_the_keeper(fleet, e2e_sandbox):
    run = fleet(QUEUED_STALL_SECONDS="2")
    run.keeper()
    run.worker()
    ext = f"{run.run_id}-lost"
    from worker.contract import parse_order

    # A producer that died between registering the order and sending it.
    run.ledger.register(ext, parse_order(order(ext)).model_dump(mode="json"), "backfill", first_step="create_order",
                        start_within=2)
    assert run.producer.enqueue_order(order(ext), "backfill").sent is False  # a second producer does not resend
    run.wait([ext], 30)
    assert run.ledger.get(ext).resends == 1 and in_keap(e2e_sandbox, ext) == (1, 1)


@pytest.mark.parametrize("problem", ["no credential", "evicting redis"])
def test_a_worker_that_cannot_work_refuses_to_start(fleet, problem, tmp_path):
    run = fleet()
    env = {**os.environ, **run.env}
    server = None
    if problem == "no credential":
        env.pop("KEAP_API_KEY")
        env["KEAP_API_KEY"] = ""
    else:
        port = 26000 + os.getpid() % 1000
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"],
                                  stdout=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0,
                 10, "the evicting redis-server")
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    try:
        result = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "x"], env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        if server:
            server.terminate()
            server.wait()
    assert result.returncode == 78
    expected = "no Keap credential" if problem == "no credential" else "maxmemory-policy allkeys-lru"
    assert "refuses to start" in result.stderr and expected in result.stderr


def test_the_daily_quota_used_up_at_23_59_50_parks_orders_until_the_reset(fleet, redis_client):
    from sandbox.server import Sandbox

    now = datetime.now(timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (midnight - now).total_seconds() - 10  # the sandbox's Keap clock reads 23:59:50 now
    with Sandbox(port=0, limits="100/s,1000/min,8/day", clock=lambda: time.time() + offset) as sb:
        run = fleet(sb)
        run.keeper()
        run.worker()
        ids = [f"{run.run_id}-q{i}" for i in range(2)]
        for ext in ids:
            run.producer.enqueue_order(order(ext), "backfill")
        parked = wait_for(lambda: [run.ledger.get(e) for e in ids if run.ledger.get(e).status == "waiting"], 20,
                          "an order parked for the quota")
        assert parked[0].parked_reason == "daily quota"
        assert parked[0].parked_until - time.time() < 15  # until Keap's reset (its clock), not a day of ours
        run.wait(ids, 60)
        assert time.time() + offset > midnight.timestamp()  # they finished after the reset
        assert [in_keap(sb, ext) for ext in ids] == [(1, 1)] * 2
