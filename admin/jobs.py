"""Backfill jobs as operators read them (`keap-orders jobs show`, the console's Jobs page): the job in lines with
its ETA at the current limits, and what a feeder needs to know of a file before it starts (admin/estimate.py)."""
from __future__ import annotations

from pathlib import Path

import redis

from admin.estimate import estimate_file
from producers.jobs import Job, eta
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
