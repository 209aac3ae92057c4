"""Backfill jobs that outlive the terminal: `backfill FILE --detach` records one, `feeder` runs them (a Procfile
process), `jobs` lists, shows, pauses, resumes and cancels them; `console-user` prints a console login entry."""
from __future__ import annotations

import getpass
import logging
import signal
import sys
from pathlib import Path

import click

from admin.cli import base
from admin.cli.show import emit_json
from admin.jobs import as_json, describe, prepare, scopes_of
from admin.web.console.users import hash_password
from producers.feeder import Feeder
from producers.jobs import Job, Jobs
from producers.sources import detect_format
from producers.sources.base import ReadOptions


def _jobs() -> Jobs:
    return Jobs(base.ledger())


def detach(file: Path, fmt: str | None, options: dict, window: int | None, read: ReadOptions) -> None:
    """`backfill FILE --detach`: record the job for a feeder and return at once; a file that is no order export
    is refused now (FileRejected, exit 1), not by the feeder later."""
    fmt = detect_format(file, fmt, read)
    store = _jobs()
    job = store.create(str(file.resolve()), fmt, options, window or base.settings().backfill_window)
    store.trim(base.settings().done_retention_days * 86400)  # the index grows here only: ended jobs past retention go
    click.echo(f"job {job.id}: queued for a feeder (Procfile `feeder`); this terminal may close.\n"
               f"  follow it: keap-orders jobs show {job.id}   pause: keap-orders jobs pause {job.id}")


@click.group(invoke_without_command=True, epilog="\b\nExamples:\n  keap-orders backfill orders_export.csv --detach\n"
             "  keap-orders jobs\n  keap-orders jobs show JOB_ID\n  keap-orders jobs invalid JOB_ID > invalid.csv")
@click.pass_context
def jobs(ctx) -> None:
    """Backfill jobs run by feeders (`backfill FILE --detach`); alone, lists the newest."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_jobs)


@jobs.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json_", is_flag=True, help="Machine-readable: a list of jobs as `jobs show --json` prints one.")
def list_jobs(limit=20, as_json_=False) -> None:
    """The newest jobs: status, progress, counts."""
    store = _jobs()
    if as_json_:
        now, limits = store.ledger.now(), scopes_of(base.settings())
        emit_json([as_json(job, now, limits) for job in store.recent(limit)])
        return
    for job in store.recent(limit):
        c = job.counts
        click.echo(f"{job.id}\t{job.status}\t{job.position}/{job.total if job.total is not None else '?'}\t"
                   f"done {c['done']} failed {c['failed']} invalid {c['invalid']} in flight {job.in_flight}\t"
                   f"{Path(job.file).name}")


def _job(store: Jobs, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise click.ClickException(f"job {job_id}: no such job (`keap-orders jobs list` shows them)")
    return job


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json_", is_flag=True,
              help="Machine-readable: id, status, file, format, window, total, position, line, counts (sent, skipped, "
                   "done, failed, cancelled, invalid), in_flight, settled, rate, eta, created_at, started_at, "
                   "finished_at (epoch seconds), resumed, error.")
def show(job_id, as_json_) -> None:
    """One job: position in the file, counts, rate and ETA (a date when the daily quota spreads it over days)."""
    store = _jobs()
    _job(store, job_id)
    store.settle(job_id)
    job, now, limits = store.get(job_id), store.ledger.now(), scopes_of(base.settings())
    if as_json_:
        emit_json(as_json(job, now, limits))
        return
    click.echo("\n".join(describe(job, now, limits)))


@jobs.command()
@click.argument("job_id")
def invalid(job_id) -> None:
    """The job's invalid rows as CSV: line, external id, field, problem, fix."""
    store = _jobs()
    _job(store, job_id)
    click.echo(store.invalid_csv(job_id), nl=False)


def _set(job_id: str, status: str, said: str) -> None:
    try:
        _jobs().set_status(job_id, status)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"job {job_id}: {said}")


@jobs.command()
@click.argument("job_id")
def pause(job_id) -> None:
    """Stop reading the file (orders already sent still finish); `resume` goes on from the same row."""
    _set(job_id, "paused", "paused (orders in flight still finish)")


@jobs.command()
@click.argument("job_id")
def resume(job_id) -> None:
    """Hand a paused job back to the feeders."""
    _set(job_id, "queued", "queued for a feeder")


@jobs.command()
@click.argument("job_id")
def cancel(job_id) -> None:
    """Stop the job for good (orders already sent still finish; re-run the file to import the rest)."""
    _set(job_id, "cancelled", "cancelled (orders in flight still finish)")


@click.command(epilog="\b\nExample:\n  keap-orders feeder     (the Procfile's feeder line)")
@click.option("--once", is_flag=True, help="Take at most one job, run it, and exit (tests, cron).")
def feeder(once) -> None:
    """Run backfill jobs (`backfill --detach`) from Redis: one at a time, resuming a dead feeder's job at its
    recorded row. SIGTERM stops after the current row; run one or more (Procfile `feeder`)."""
    settings = base.settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = _jobs()
    runner = Feeder(base.producer(), store, lease_seconds=settings.feeder_lease_seconds, prepare=prepare)
    signal.signal(signal.SIGTERM, lambda *_: runner.stopping.set())
    try:
        runner.serve(once=once)
    except KeyboardInterrupt:
        runner.stopping.set()


@click.command("console-user", epilog="\b\nExample:\n  keap-orders console-user ana --role read-only   "
               "(add the line it prints to CONSOLE_USERS)")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "read-only"]), default="admin", show_default=True)
def console_user(name, role) -> None:
    """Print a CONSOLE_USERS entry for NAME (asks for the password; only its PBKDF2 hash is printed)."""
    if ":" in name or "," in name:
        raise click.BadParameter("a name without ':' or ','", param_hint="NAME")
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise click.ClickException("a password of at least 8 characters, please")
    click.echo(f"{name}:{hash_password(password)}:{role}")


COMMANDS = (jobs, feeder, console_user)
