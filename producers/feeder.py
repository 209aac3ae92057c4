"""The feeder: takes backfill jobs from Redis (producers/jobs.py) and reads their files into the workers, a window
of orders in flight, recording each row as it goes; a feeder that dies leaves its lease to expire and the next one
resumes at the recorded row. Nothing is sent twice: the ledger refuses orders already registered."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from producers.enqueue import Producer
from producers.jobs import Job, Jobs
from producers.sources import count_orders, detect_format, read_file
from producers.sources.base import FileRejected, ReadOptions
from worker.contract import OrderInvalid
from worker.ledger import ACTIVE, FINAL

log = logging.getLogger(__name__)

# (orders in the file, Keap calls per valid order) for a job about to start; admin/estimate.py knows the calls.
Prepare = Callable[[Path, str, ReadOptions], tuple[int, float]]
TRIM_SECONDS = 600.0  # how often a serving feeder deletes jobs past their retention


def count_only(path: Path, fmt: str, options: ReadOptions) -> tuple[int, float]:
    return count_orders(path, fmt, options), 1.0


class Feeder:
    def __init__(self, producer: Producer, jobs: Jobs, *, lease_seconds: float = 15.0, poll_seconds: float = 0.5,
                 prepare: Prepare = count_only):
        self.producer, self.jobs, self.ledger = producer, jobs, producer.ledger
        self.lease_seconds, self.poll_seconds, self.prepare = lease_seconds, poll_seconds, prepare
        self.token = uuid.uuid4().hex
        self.stopping = threading.Event()

    def serve(self, idle_seconds: float = 2.0, once: bool = False) -> None:
        """Take jobs until stopped (SIGTERM sets `stopping`): one at a time; in between, settle the counts of
        paused and cancelled jobs whose orders still finish, and every TRIM_SECONDS delete the jobs that ended more
        than DONE_RETENTION_DAYS ago (`Jobs.trim`)."""
        trimmed_at = -TRIM_SECONDS
        while not self.stopping.is_set():
            if time.monotonic() - trimmed_at >= TRIM_SECONDS:
                trimmed_at = time.monotonic()
                self.jobs.trim(self.producer.settings.done_retention_days * 86400)
            took = False
            for job_id in self.jobs.claimable():
                if self.jobs.claim(job_id, self.token, self.lease_seconds) == "ok":
                    took = True
                    self.run(job_id)
                    break
            for job_id in self.jobs.unsettled():
                self.jobs.settle(job_id)
            if once:
                return
            if not took:
                self.stopping.wait(idle_seconds)

    def run(self, job_id: str) -> None:
        """Read a job this feeder claimed, from its recorded position, then wait for its orders; the lease is
        renewed in the background and given up at the end (or expires if this process dies)."""
        lost = threading.Event()
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(job_id, lost, done), daemon=True)
        renewer.start()
        job = None
        try:
            job = self.jobs.get(job_id)
            log.info("job %s: reading from row %d (claim %d)", job_id, job.position, job.claims)
            self._read(job, lost)
            while not lost.is_set() and not self.stopping.is_set() and self.jobs.status(job_id) == "running":
                self.jobs.settle(job_id)
                if self.jobs.status(job_id) != "running":
                    break
                time.sleep(self.poll_seconds)
        except (OSError, FileRejected) as exc:
            reason = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
            self.jobs.note(job_id, status="failed", error=f"{job.file if job else job_id}: {reason}")
            log.error("job %s: the file cannot be read: %s", job_id, reason)
        finally:
            done.set()
            renewer.join()
            self.jobs.release(job_id, self.token)

    def _renew(self, job_id: str, lost: threading.Event, done: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            try:
                if not self.jobs.renew(job_id, self.token, self.lease_seconds):
                    lost.set()
                    return
            except Exception:  # noqa: BLE001 - the next renewal may get through; the lease lasts three periods
                continue

    def _read(self, job: Job, lost: threading.Event) -> None:
        path = Path(job.file)
        options = ReadOptions.from_settings(self.producer.settings, **job.options)
        fmt = detect_format(path, job.fmt, options)
        if job.total is None:
            total, per_order = self.prepare(path, fmt, options)
            self.jobs.note(job.id, total=total, calls_per_order=per_order, fmt=fmt)
        checked = time.monotonic()
        for index, row in enumerate(read_file(path, fmt, options)):
            if index < job.position:
                continue  # handled before this feeder took the job
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if self.jobs.status(job.id) != "running" or self.stopping.is_set():
                    return
            while self.jobs.get(job.id).in_flight >= job.window:
                if lost.is_set() or self.stopping.is_set():
                    return
                if not self.jobs.settle(job.id):
                    time.sleep(self.poll_seconds)
            if lost.is_set() or not self._handle(job, index, row):
                log.warning("job %s: lease lost at row %d; another feeder goes on", job.id, index)
                return
        self.jobs.note(job.id, read_all=1)

    def _handle(self, job: Job, index: int, row) -> bool:
        """Send one row's order unless the ledger has it, and record the row; a row a dead feeder had begun
        (`pending`) is found registered and counted as sent, not as done before."""
        if row.error is not None:
            return self.jobs.record_row(job.id, self.token, index + 1, row.line, "invalid",
                                        invalid=_invalid(row.line, row.external_id, row.error))
        ext = row.order.external_id
        status = self.ledger.statuses([ext])[ext]
        begun = self.jobs.pending(job.id) == index
        if status not in ACTIVE + FINAL:
            self.jobs.note(job.id, pending=index)
            status = self.producer.enqueue_order(row.order, "backfill").status
            begun = True
        if status == "cancelled":
            counter, watch = "cancelled", ""
        elif status == "done" and not begun:
            counter, watch = "skipped", ""
        else:  # sent now, by a feeder that died, or in flight from an earlier run: the workers finish it
            counter, watch = "sent", ext
        return self.jobs.record_row(job.id, self.token, index + 1, row.line, counter, watch=watch)


def _invalid(line: int, external_id: str | None, error: OrderInvalid) -> dict:
    """An invalid row for the job's CSV: the line, and per problem its field, message and fix (never the values)."""
    return {"line": line, "external_id": external_id,
            "errors": [{"field": e.field, "message": e.message, "hint": e.hint} for e in error.errors]}
