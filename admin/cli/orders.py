"""The operator's view of orders in the ledger: `status`, `stuck`, `failed`, `retry`, `export`, `cancel`, and `gc`
(compacting done orders past their retention)."""
from __future__ import annotations

import json
import sys

import click

from admin.cli import base
from admin.cli.base import EXIT_ERROR
from admin.console import FailedFilter, describe, failed_orders, moment, span, when
from admin.console import export as record_of
from admin.console import stuck as find_stuck
from worker.contract import OrderInvalid
from worker.pipeline import LANES, STEP_NAMES


@click.command()
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (times as epoch seconds).")
def status(external_id, as_json) -> None:
    """Show one order: status, current or failed step, parked-until time, error, Keap ids."""
    ledger = base.ledger()
    state, problem = ledger.get(external_id), ledger.problem(external_id)
    if state is None and problem is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    if as_json:
        click.echo(json.dumps({**(state.as_dict() if state else {"external_id": external_id, "status": None}),
                               "problem": problem}, indent=2, default=str))
        return
    if state is not None:
        click.echo(describe(state, ledger.now()))
    if problem is not None:  # conflicting content, or a store delivery that maps to no valid order
        click.echo(f"problem: {problem['kind']} ({problem['source']}): {problem['reason']}")


@click.command()
@click.option("--older-than", default=300.0, show_default=True, help="Seconds without a change.")
@click.option("--limit", default=100, show_default=True)
def stuck(older_than, limit) -> None:
    """Orders that are not moving: how long, at which step, and why if known."""
    rows = find_stuck(base.ledger(), older_than, limit)
    for row in rows:
        click.echo(f"{row.external_id}\t{row.status}\t{row.step}\t{span(row.still_for)}\t{row.why}")
    click.echo(f"{len(rows)} order(s) without a change for over {older_than:g}s", err=True)


def failed_filters(command):
    """The options that pick failed orders (`failed`, `retry --failed`), turned into `which=FailedFilter`."""
    options = [
        click.option("--step", type=click.Choice(STEP_NAMES), default=None, help="Failed at this step."),
        click.option("--reason", default=None,
                     help="An error kind (rejected, keap, transient, internal, stalled, queue) or words of the error."),
        click.option("--since", default=None,
                     help="Failed at or after: 90m, 2h, 3d (ago) or 2026-11-26[T14:00] (UTC)."),
        click.option("--until", default=None, help="Failed at or before (same forms as --since)."),
        click.option("--lane", type=click.Choice(LANES), default=None, help="Orders of this lane."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _which(ledger, step, reason, since, until, lane):
    now = ledger.now()
    try:
        return FailedFilter(step=step, reason=reason, lane=lane, since=moment(since, now) if since else None,
                            until=moment(until, now) if until else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from None


def _failed_rows(ledger, rows) -> None:
    now = ledger.now()
    for row in rows:
        click.echo(f"{row.external_id}\t{row.step}\t{row.kind}\t{when(row.failed_at, now)}\t{row.error}")


@click.command()
@failed_filters
@click.option("--limit", default=50, show_default=True)
def failed(step, reason, since, until, lane, limit) -> None:
    """List failed orders (oldest failure first) with the step, error kind, time and reason."""
    ledger = base.ledger()
    rows, total = failed_orders(ledger, _which(ledger, step, reason, since, until, lane))
    _failed_rows(ledger, rows[:limit])
    shown = f", {limit} shown" if len(rows) > limit else ""
    click.echo(f"{len(rows)} of {total} failed order(s) match{shown}", err=True)
    problems = ledger.problem_count()
    if problems:
        click.echo(f"and {problems} order(s) with a problem (conflicting content, invalid store deliveries): "
                   "`keap-orders status ID`, or GET /v1/problems", err=True)


@click.command()
@click.argument("external_id", required=False)
@click.option("--failed", "bulk", is_flag=True, help="Retry every failed order the filters pick (instead of one ID).")
@failed_filters
@click.option("--from-step", type=click.Choice(STEP_NAMES), default=None, help="Default: the step that failed.")
@click.option("--file", "fixed", type=click.File("r"), default=None, help="A corrected order (JSON) to use instead.")
@click.option("--charges-checked", is_flag=True,
              help="You checked in Keap that a stored-card charge whose answer was lost did not go through.")
@click.option("--dry-run", is_flag=True, help="With --failed: list what would be retried, send nothing.")
@click.option("--yes", is_flag=True, help="With --failed: do not ask for confirmation.")
def retry(external_id, bulk, step, reason, since, until, lane, from_step, fixed, charges_checked, dry_run,
          yes) -> None:
    """Retry an order from the step that failed (work already done in Keap is not repeated), or with --failed every
    failed order that --step, --reason, --since, --until and --lane pick (listed first, then confirmed).

    For one order, --lane sends it on that lane; with --failed it picks the orders of that lane."""
    if bulk == bool(external_id):
        raise click.UsageError("give one order ID, or --failed with filters")
    if not bulk:
        if any((step, reason, since, until, dry_run, yes)):
            raise click.UsageError("--step, --reason, --since, --until, --dry-run and --yes go with --failed")
        _retry_one(external_id, from_step, fixed, lane, charges_checked)
        return
    if fixed or charges_checked:
        raise click.UsageError("--file and --charges-checked are for one order at a time")
    _retry_failed(_which(base.ledger(), step, reason, since, until, lane), from_step, dry_run, yes)


def _retry_one(external_id, from_step, fixed, lane, charges_checked) -> None:
    try:
        result = base.producer().retry_order(external_id, from_step=from_step,
                                             order=json.load(fixed) if fixed else None, lane=lane,
                                             charges_checked=charges_checked)
    except (LookupError, ValueError, OrderInvalid) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"order {result.external_id}: {result.status}")


def _retry_failed(which, from_step, dry_run, yes) -> None:
    producer = base.producer()
    rows, _ = failed_orders(producer.ledger, which)
    _failed_rows(producer.ledger, rows)
    if not rows:
        click.echo("no failed order matches", err=True)
        return
    if dry_run:
        click.echo(f"dry run: {len(rows)} order(s) would be retried; nothing was sent", err=True)
        return
    if not yes and not click.confirm(f"Retry these {len(rows)} order(s)?", err=True):
        raise click.ClickException("nothing was retried")
    problems = []
    for row in rows:
        try:
            producer.retry_order(row.external_id, from_step=from_step)
        except (LookupError, ValueError, OrderInvalid) as exc:
            problems.append(f"{row.external_id}: {exc}")
    for problem in problems:
        click.echo(f"not retried: {problem}", err=True)
    click.echo(f"retried {len(rows) - len(problems)} of {len(rows)} order(s)")
    if problems:
        sys.exit(EXIT_ERROR)


@click.command()
@click.argument("external_id")
@click.option("--with-message", is_flag=True,
              help="Include the stored order (the customer's name, email, addresses): handle it as personal data.")
def export(external_id, with_message) -> None:
    """Print an order's ledger record as JSON for support: status, steps, errors, Keap ids, unanswered writes, times.
    No customer data unless --with-message."""
    ledger = base.ledger()
    state = ledger.get(external_id)
    if state is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    if with_message:
        click.echo("warning: this record contains the customer's personal data (name, email, addresses); share it "
                   "only where such data may go, and delete it when done", err=True)
    click.echo(json.dumps(record_of(state, ledger.now(), with_message=with_message), indent=2, default=str))


@click.command()
@click.argument("external_id")
def cancel(external_id) -> None:
    """Stop an order: steps not yet run are skipped (what is already in Keap stays)."""
    ledger = base.ledger()
    if ledger.get(external_id) is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    ledger.cancel(external_id)
    click.echo(f"order {external_id}: cancelled")


@click.command()
@click.option("--older-than-days", type=float, default=None,
              help="Compact done orders that finished longer ago than this (default: DONE_RETENTION_DAYS).")
@click.option("--dry-run", is_flag=True, help="Count what would be compacted, change nothing.")
@click.option("--index-existing", is_flag=True,
              help="First index done orders that finished before this version (reads every done order once).")
def gc(older_than_days, dry_run, index_existing) -> None:
    """Compact done orders past their retention to a small marker: status and the Keap ids that keep a re-sent
    order from being written again; the order's data goes. The keeper does the same a batch at a time."""
    settings, ledger = base.settings(), base.ledger()
    days = settings.done_retention_days if older_than_days is None else older_than_days
    if days <= 0:
        raise click.ClickException("retention is off (DONE_RETENTION_DAYS=0); pass --older-than-days")
    if index_existing:
        click.echo(f"indexed {ledger.index_done()} done order(s) that were not indexed yet")
    if dry_run:
        click.echo(f"{ledger.done_due(days * 86400)} done order(s) finished over {days:g} days ago would be compacted")
        return
    total = 0
    while True:
        looked, compacted = ledger.compact_done(days * 86400, limit=500)
        total += compacted
        if looked < 500:
            break
    click.echo(f"compacted {total} done order(s) finished over {days:g} days ago")


COMMANDS = (cancel, export, failed, gc, retry, status, stuck)
