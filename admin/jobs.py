"""Backfill jobs as operators read them (`keap-orders jobs show`, the console's Jobs page): the job in lines with
its ETA at the current limits or as JSON (`--json`), and what a feeder needs to know of a file before it starts (admin/estimate.py)."""
from __future__ import annotations

from pathlib import Path

import redis

from admin.estimate import estimate_file
from producers.jobs import COUNTS, Job, eta
from worker.context import NoCredential, throttle
from worker.settings import Settings


def prepare(path: Path, fmt: str, options) -> tuple[int, float]:
    """Orders in the file and Keap calls per valid order, read once before the first row is sent (the ETA)."""
    estimate = estimate_file(path, fmt, options)
    return estimate.orders + estimate.invalid, estimate.calls / max(estimate.orders, 1)


def scopes_of(settings: Settings, client: redis.Redis | None = None) -> list[dict]:
    """The shared limits now (the ETA's daily quota); none without a credential."""
    try:
        return throttle(settings, client).snapshot()
    except NoCredential:
        return []


def describe(job: Job, now: float, limits: list[dict]) -> list[str]:
    c = job.counts
    total = "?" if job.total is None else f"{job.total:,}"
    lines = [f"job {job.id}: {job.status}" + (f" ({job.error})" if job.error else ""),
             f"  file       {job.file}" + (f" ({job.fmt})" if job.fmt else ""),
             f"  read       {job.position:,} of {total} orders (line {job.line:,})",
             f"  sent       {c['sent']:,} (done before: {c['skipped']:,})   in flight {job.in_flight:,}",
             f"  done       {c['done']:,}   failed {c['failed']:,}   cancelled {c['cancelled']:,}   "
             f"invalid {c['invalid']:,}",
             f"  rate       {job.rate(now):.2f} orders/s   ETA {eta(job, limits, now)}"]
    if job.claims > 1:
        lines.append(f"  resumed    {job.claims - 1} time(s) by another feeder")
    if c["invalid"]:
        lines.append(f"  invalid rows: keap-orders jobs invalid {job.id} > invalid.csv (line, field, problem, fix)")
    return lines


def as_json(job: Job, now: float, limits: list[dict]) -> dict:
    """A job for `jobs list --json` / `jobs show --json`: the same keys for every job (None where unknown yet), times as
    epoch seconds; counts and positions, never a row's content (the invalid rows are `jobs invalid`)."""
    return {"id": job.id, "status": job.status, "file": job.file, "format": job.fmt, "window": job.window,
            "total": job.total, "position": job.position, "line": job.line,
            "counts": {name: job.counts.get(name, 0) for name in COUNTS}, "in_flight": job.in_flight,
            "settled": job.settled, "rate": round(job.rate(now), 4), "eta": eta(job, limits, now),
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
            "resumed": max(job.claims - 1, 0), "error": job.error}
