"""Task time limits in a real prefork worker: a step that runs past the soft limit is retried (not failed as a bug),
and the order still ends with exactly one Keap order; a worker whose limits do not fit refuses to start."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.e2e.conftest import in_keap, order


def test_a_step_past_the_soft_time_limit_is_retried_and_the_order_finishes_once(fleet, e2e_sandbox, tmp_path):
    # Every call takes 0.7 s (under the 1 s read timeout); a new customer's create_order makes about six, so its first
    # run passes the 3 s soft limit. The retry finds the contact and products cached and finishes in time.
    run = fleet(KEAP_TIMEOUT_SECONDS="1", TASK_SOFT_TIME_LIMIT_SECONDS="3", TASK_TIME_LIMIT_SECONDS="20",
                MAX_RETRIES="3")
    e2e_sandbox.set_faults(latency_ms=700)
    ext = f"{run.run_id}-slow"
    run.producer.enqueue_order(order(ext), "live")
    log_path = tmp_path / "worker.log"
    try:
        with open(log_path, "w") as log:
            run.worker(pool="prefork", concurrency=1, errors=log, loglevel="INFO")
            run.wait([ext], 90)
    finally:
        e2e_sandbox.set_faults()
    assert in_keap(e2e_sandbox, ext) == (1, 1)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    steps = [(p["step"], p["outcome"]) for p in lines if p.get("logger") == "keap_orders.steps"]
    assert ("create_order", "retry") in steps and ("create_order", "next") in steps, steps
    assert not any(p.get("error_kind") == "internal" for p in lines)
    assert any("Soft time limit" in (p.get("message") or "") for p in lines)


def test_a_worker_whose_hard_time_limit_reaches_the_visibility_timeout_refuses_to_start(fleet):
    run = fleet(TASK_TIME_LIMIT_SECONDS="400", VISIBILITY_TIMEOUT_SECONDS="300")
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "x"],
                            env={**os.environ, **run.env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 78 and "must be below VISIBILITY_TIMEOUT_SECONDS" in result.stderr
