"""The write path with real worker processes stopped (SIGSTOP) and resumed (SIGCONT) at its worst moments: a wait for
the rate limit is never a lost answer (issue 16 case 0), a stopped worker neither sends nor records after another
took its order over (case 2), and a stopped worker neither stalls the fleet's schedule nor bursts (case 7)."""
from __future__ import annotations

import os
import signal
import time

from tests.e2e.conftest import in_keap, order
from worker import context


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s: {what}")


def lookups(sandbox) -> int:
    """Calls that only a settle makes: looking for an order by its external id, or for a payment."""
    return sum(n for key, n in sandbox.stats()["requests"].items()
               if key.startswith(("GET /rest/v2/orders ", "GET /rest/v2/orders/{order_id}/payments ")))


def test_a_wait_for_the_rate_limit_is_never_taken_for_a_lost_answer(fleet, e2e_sandbox):
    # 4 calls/s for 8 worker threads, and no call may wait more than 0.3 s for its slot: writes are sent back to
    # the queue by the throttle again and again. None of them was sent, so none may settle or look itself up.
    run = fleet(RATE_LIMITS="4/s", THROTTLE_MAX_BLOCK_SECONDS="0.3", SETTLE_SECONDS="5")
    run.keeper()
    run.worker("a", concurrency=4)
    run.worker("b", concurrency=4)
    ids = [f"{run.run_id}-{i}" for i in range(12)]
    for ext in ids:
        run.producer.enqueue_order(order(ext), "live")
    run.wait(ids, 120)
    assert [in_keap(e2e_sandbox, ext) for ext in ids] == [(1, 1)] * len(ids)
    assert lookups(e2e_sandbox) == 0


def test_a_worker_stopped_before_its_send_never_sends_after_another_took_the_order_over(fleet, e2e_sandbox):
    run = fleet(RATE_LIMITS="1/s", SETTLE_SECONDS="2", SETTLE_CHECKS="1")
    run.keeper()
    frozen = run.worker("frozen", concurrency=1)
    first, ext = f"{run.run_id}-warm", f"{run.run_id}-victim"
    email = {"email": f"{run.run_id}@example.com", "given_name": "Test"}
    run.producer.enqueue_order(order(first, customer=email), "live")  # the contact and products are cached after
    run.wait([first], 60)
    throttle = context.throttle(run.settings)
    for _ in range(3):  # the victim's order is written 3 s from now: time to stop its worker in the wait
        throttle.reserve("live")
    taken = throttle.snapshot()[0]["day"]["total"]
    run.producer.enqueue_order(order(ext, customer=email), "live")
    wait_for(lambda: throttle.snapshot()[0]["day"]["total"] > taken, 10, "the victim's write taking a slot", 0.005)
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        run.worker("rescuer")
        run.wait([ext], 60)
        assert in_keap(e2e_sandbox, ext) == (1, 1)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    time.sleep(4)  # the stopped worker wakes: its slot is stale, its lease gone, and it must not send
    assert in_keap(e2e_sandbox, ext) == (1, 1)
    state = run.ledger.get(ext)
    assert state.status == "done" and not state.intents and run.ledger.orphans() == []


def test_an_answer_that_comes_after_the_lease_is_lost_is_an_orphan_and_never_repoints_the_ledger(
        fleet, e2e_sandbox, tmp_path):
    # Keap applies the stopped worker's write 10 s after it arrived, later than the settle time and the lookup of
    # the worker that took over (a Keap slower than SETTLE_SECONDS: a duplicate no fence can stop). Its answer,
    # read once the stopped worker runs again, must not move the ledger to that unpaid duplicate.
    run = fleet(SETTLE_SECONDS="2", SETTLE_CHECKS="1")
    run.keeper()
    stderr = tmp_path / "frozen.log"
    with stderr.open("w") as errors:
        frozen = run.worker("frozen", concurrency=1, errors=errors)
    ext = f"{run.run_id}-late"
    e2e_sandbox.set_faults(latency_ms=10_000, routes=["POST /rest/v2/orders"])
    run.producer.enqueue_order(order(ext), "live")
    wait_for(lambda: "order_id" in run.ledger.get(ext).intents, 30, "the create_order request sent", 0.01)
    time.sleep(0.5)
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        e2e_sandbox.set_faults()  # the request in Keap keeps its 10 s
        run.worker("rescuer")
        run.wait([ext], 60)
        paid = run.ledger.get(ext).results["order_id"]
        wait_for(lambda: in_keap(e2e_sandbox, ext) == (2, 1), 30, "the late write applied in Keap")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_for(lambda: "orphan" in stderr.read_text() or run.ledger.get(ext).results["order_id"] != paid, 15,
             "the stopped worker reading its answer")
    state = run.ledger.get(ext)
    assert state.status == "done" and state.results["order_id"] == paid
    orphans = run.ledger.orphans()
    assert [(o.external_id, o.what) for o in orphans] == [(ext, "order_id")]
    assert orphans[0].results["order_id"] != paid
    logged = [line for line in stderr.read_text().splitlines() if "orphan" in line]
    assert len(logged) == 1 and "ERROR" in logged[0] and "@" not in logged[0], logged


def test_a_stopped_worker_neither_stalls_the_fleets_schedule_nor_bursts_when_it_wakes(fleet, e2e_sandbox):
    run = fleet(RATE_LIMITS="4/s", THROTTLE_MAX_BLOCK_SECONDS="5")
    run.keeper()
    sleeper = run.worker("sleeper", concurrency=4)
    run.worker("a", concurrency=4)
    run.worker("b", concurrency=4)
    throttle = context.throttle(run.settings)
    ids = [f"{run.run_id}-{i}" for i in range(16)]
    for ext in ids:
        run.producer.enqueue_order(order(ext), "live")
    wait_for(lambda: throttle.snapshot()[0]["next_slot_in"] > 2, 30, "every worker waiting for its slot")
    os.kill(sleeper.pid, signal.SIGSTOP)  # its threads hold slots a few seconds ahead
    time.sleep(8)
    os.kill(sleeper.pid, signal.SIGCONT)
    ahead = []
    while not all(s == "done" for s in run.ledger.statuses(ids).values()):
        ahead.append(throttle.snapshot()[0]["next_slot_in"])
        assert len(ahead) < 1200, run.ledger.statuses(ids)
        time.sleep(0.1)
    # The woken worker's stale slots are not spent at once (4 calls span 1.02 s at this pace: 5 in a second is
    # one call's arrival jitter), and the schedule never stands further ahead than a live call may reserve (5 s)
    # plus a slot.
    assert e2e_sandbox.stats()["max_per_second"]["api-key"] <= 5
    assert max(ahead) <= 5 + 0.3, max(ahead)
    assert [in_keap(e2e_sandbox, ext) for ext in ids] == [(1, 1)] * len(ids)
