"""A detached backfill as an operator runs it: `keap-orders backfill FILE --detach` returns at once (the terminal may
close), a feeder process reads the file, is SIGKILLed half way, and a second feeder resumes at the recorded row:
every order in Keap once, the job's counts right."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from producers.jobs import Jobs
from tests.e2e.conftest import in_keap, order
from tests.e2e.test_liveness import wait_for

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 40


def _cli(env: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "admin.cli", *args], cwd=ROOT, env={**os.environ, **env},
                            start_new_session=True, **popen)


def test_a_detached_backfill_survives_its_terminal_and_a_sigkill_of_its_feeder(fleet, tmp_path):
    f = fleet(BACKFILL_WINDOW="3", FEEDER_LEASE_SECONDS="2")
    f.worker(concurrency=2)
    ids = [f"det-{i:03d}" for i in range(ORDERS)]
    rows = [json.dumps(order(ext)) for ext in ids]
    rows.insert(7, json.dumps(order("det-bad", items=[])))  # invalid: an order needs items
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(rows) + "\n")

    # The "terminal": it records the job and exits at once, before any order is sent.
    terminal = _cli(f.env, "backfill", str(path), "--detach", stdout=subprocess.PIPE, text=True)
    said, _ = terminal.communicate(timeout=60)
    assert terminal.returncode == 0, said
    job_id = said.split()[1].rstrip(":")
    jobs = Jobs(f.ledger)
    assert jobs.get(job_id).status == "queued" and jobs.get(job_id).counts["sent"] == 0

    first = _cli(f.env, "feeder", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: jobs.get(job_id).position >= 12, 60, "the first feeder did not read 12 rows")
        os.killpg(first.pid, signal.SIGKILL)  # no clean-up of any kind: its lease expires in 2 s
        first.wait(10)
        cut = jobs.get(job_id)
        assert cut.status == "running" and cut.position < ORDERS + 1
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    second = _cli(f.env, "feeder", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = wait_for(lambda: (job := jobs.get(job_id)).status == "finished" and job, 120,
                     f"the job did not finish: {jobs.get(job_id)}")
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(20)

    assert done.claims == 2 and done.position == ORDERS + 1 and done.total == ORDERS + 1
    assert done.counts == {"sent": ORDERS, "skipped": 0, "done": ORDERS, "failed": 0, "cancelled": 0, "invalid": 1}
    assert done.in_flight == 0
    assert all(in_keap(f.sandbox, ext) == (1, 1) for ext in ids)  # each order and its payment once
    assert [row["line"] for row in jobs.invalid_rows(job_id)] == [8]
    assert "line,external_id,field,problem,fix" in jobs.invalid_csv(job_id)


def test_a_paused_job_stops_reading_and_resumes_at_the_same_row(fleet, tmp_path):
    import threading

    from producers.feeder import Feeder

    f = fleet()
    f.worker(concurrency=2)
    f.sandbox.set_faults(latency_ms=40)  # orders take a moment, so the pause lands while rows are still unread
    try:
        ids = [f"pause-{i:03d}" for i in range(20)]
        path = tmp_path / "orders.jsonl"
        path.write_text("\n".join(json.dumps(order(ext)) for ext in ids) + "\n")
        jobs = Jobs(f.ledger)
        job = jobs.create(str(path), None, {}, 2)
        feeder = Feeder(f.producer, jobs, lease_seconds=3, poll_seconds=0.05)
        thread = threading.Thread(target=feeder.run, args=(job.id,), daemon=True)
        assert jobs.claim(job.id, feeder.token, 3) == "ok"
        thread.start()
        wait_for(lambda: jobs.get(job.id).position >= 4, 60, "the feeder did not start reading")
        jobs.set_status(job.id, "paused")
        thread.join(10)
        assert not thread.is_alive()  # it stopped and gave the job up
        stopped = jobs.get(job.id).position
        assert stopped < len(ids)
        time.sleep(1)
        assert jobs.get(job.id).position == stopped and jobs.claim(job.id, "other", 3) == "paused"
        jobs.set_status(job.id, "queued")
        feeder.serve(once=True)
        done = jobs.get(job.id)
        assert done.status == "finished" and done.counts["done"] == len(ids) and done.counts["sent"] == len(ids)
        assert all(in_keap(f.sandbox, ext) == (1, 1) for ext in ids)
    finally:
        f.sandbox.set_faults(latency_ms=0)
