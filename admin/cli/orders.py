"""The operator's view of orders in the ledger: `status`, `stuck`, `failed`, `retry`, `export`, `cancel`, and `gc`
(compacting done orders past their retention)."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter

import click

from admin.cli import base
from admin.cli.base import EXIT_ERROR, EXIT_FAILED, EXIT_OK
from admin.cli.show import DURATION_HELP, duration, emit_json, order_id, table
from admin.console import FailedFilter, describe, failed_orders, moment, span, when
from admin.console import export as record_of
from admin.console import stuck as find_stuck
from worker.contract import OrderInvalid
from worker.pipeline import LANES, STEP_NAMES


@click.command(epilog="\b\nExamples:\n  keap-orders status '#1001'      (a Shopify number: shopify:1001)\n"
                      "  keap-orders status shopify:1001 --json\n  keap-orders status ada@example.com   (the orders of "
                      "an email)\n  keap-orders status 48213          (a Keap order or contact id)")
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (times as epoch seconds).")
def status(external_id, as_json) -> None:
    """Show one order: status, current or failed step, parked-until time, error, Keap ids. ID is the external id,
    a store's order number (#1001, 1001) under the configured prefixes, a customer's email or a Keap order or
    contact id (several orders match: they are listed)."""
    ledger = base.ledger()
    try:
        ext = order_id(external_id, wide=True)
    except click.ClickException:
        if ledger.problem(external_id) is None:
            raise
        ext = external_id  # no order, only a problem: a store delivery that maps to no valid order
    state, problem = ledger.get(ext), ledger.problem(ext)
    if as_json:
        emit_json({**(state.as_dict() if state else {"external_id": ext, "status": None}), "problem": problem})
        return
    if state is not None:
        click.echo(describe(state, ledger.now()))
    if problem is not None:  # conflicting content, or a store delivery that maps to no valid order
        click.echo(f"problem: {problem['kind']} ({problem['source']}): {problem['reason']}")


@click.command(epilog="\b\nExamples:\n  keap-orders stuck --older-than 5m\n  keap-orders stuck --json")
@click.option("--older-than", default="5m", show_default=True, callback=duration,
              help=f"Without a change for this long: {DURATION_HELP}.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (times as seconds).")
def stuck(older_than, limit, as_json) -> None:
    """Orders that are not moving: how long, at which step, and why if known."""
    rows = find_stuck(base.ledger(), older_than, limit)
    if as_json:
        emit_json([vars(row) for row in rows])
        return
    if rows:
        table(("order", "status", "step", "still for", "why"),
              [(r.external_id, r.status, r.step, span(r.still_for), r.why) for r in rows])
    click.echo(f"{len(rows)} order(s) without a change for over {span(older_than)}", err=True)


def failed_filters(command):
    """The options that pick failed orders (`failed`, `retry --failed`), turned into `which=FailedFilter`."""
    options = [
        click.option("--step", type=click.Choice(STEP_NAMES), default=None, help="Failed at this step."),
        click.option("--reason", default=None,
                     help="An error kind (rejected, keap, transient, internal, stalled, queue) or words of the error."),
        click.option("--since", default=None,
                     help="Failed at or after: a duration ago (90s, 5m, 2h, 1d) or 2026-11-26[T14:00] (UTC)."),
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
    if rows:
        table(("order", "step", "kind", "failed", "reason"),
              [(r.external_id, r.step, r.kind, when(r.failed_at, now), r.error) for r in rows])


@click.command(epilog="\b\nExamples:\n  keap-orders failed --since 2h\n  keap-orders failed --group-by reason\n"
                      "  keap-orders failed --reason NOT-IN-KEAP --json")
@failed_filters
@click.option("--limit", default=50, show_default=True)
@click.option("--group-by", type=click.Choice(["reason", "step", "kind"]), default=None,
              help="Count the matching orders per reason (the error without the order's own id), step or kind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (times as epoch seconds).")
def failed(step, reason, since, until, lane, limit, group_by, as_json) -> None:
    """List failed orders (oldest failure first) with the step, error kind, time and reason."""
    ledger = base.ledger()
    rows, total = failed_orders(ledger, _which(ledger, step, reason, since, until, lane))
    if group_by:
        groups = Counter(_group_key(row, group_by) for row in rows).most_common(limit)
        if as_json:
            emit_json([{group_by: key, "orders": count} for key, count in groups])
        elif groups:
            table(("orders", group_by), [(count, key) for key, count in groups])
    elif as_json:
        emit_json([vars(row) for row in rows[:limit]])
    else:
        _failed_rows(ledger, rows[:limit])
    shown = f", {limit} shown" if len(rows) > limit and not group_by else ""
    click.echo(f"{len(rows)} of {total} failed order(s) match{shown}", err=True)
    _audit_reports(ledger, limit)
    if any((step, reason, since, until, lane)):  # orphans are no failed orders: the filters do not pick them
        orphans = ledger.orphan_count()
        if orphans:
            click.echo(f"and {orphans} orphan write(s): `keap-orders failed` without filters lists them", err=True)
    else:
        now = ledger.now()
        for orphan in ledger.orphans(limit):  # a Keap write whose answer came after its worker lost the order
            ids = ", ".join(f"{name} {value}" for name, value in orphan.results.items())
            click.echo(f"{orphan.external_id}\torphan write\t{orphan.what}\t{when(orphan.at, now)}\tKeap holds "
                       f"{ids}, the ledger does not point at it: check it in Keap (a duplicate, most likely) and "
                       "delete it there")
    problems = ledger.problem_count()
    if problems:
        click.echo(f"and {problems} order(s) with a problem (conflicting content, invalid store deliveries): "
                   "`keap-orders status ID`, or GET /v1/problems", err=True)


def _audit_reports(ledger, limit) -> None:
    """What the audits of uncertain orders found for an operator (a paid second Keap order, a payment twice)."""
    now = ledger.now()
    for ext, at, report in ledger.audit_reports(limit):
        click.echo(f"{ext}\taudit\treported\t{when(at, now)}\t{report}")


def _group_key(row, by: str) -> str:
    if by != "reason":
        return getattr(row, by)
    # One reason for many orders: the order's own id (and the Keap ids after it) would split each group.
    return row.error.replace(row.external_id, "…").split(" (Keap order ")[0]


@click.command(epilog="\b\nExamples:\n  keap-orders retry '#1001' --wait\n"
                      "  keap-orders retry shopify:1001 --file fixed.json   (a corrected order, or `export --with-message` output)\n"
                      "  keap-orders retry --failed --reason NOT-IN-KEAP --since 2h --dry-run")
@click.argument("external_id", required=False)
@click.option("--failed", "bulk", is_flag=True, help="Retry every failed order the filters pick (instead of one ID).")
@failed_filters
@click.option("--from-step", type=click.Choice(STEP_NAMES), default=None, help="Default: the step that failed.")
@click.option("--file", "fixed", type=click.File("r"), default=None,
              help="A corrected order (JSON), or what `export --with-message` wrote (its message is used).")
@click.option("--charges-checked", is_flag=True,
              help="You checked in Keap that a stored-card charge whose answer was lost did not go through (only for "
                   "an order failed on such a charge, after SETTLE_SECONDS; Keap is looked at once more first).")
@click.option("--wait", is_flag=True, help="Wait until the order(s) finish; exit 4 if any failed.")
@click.option("--timeout", default="10m", show_default=True, callback=duration,
              help=f"With --wait: give up waiting after {DURATION_HELP}.")
@click.option("--dry-run", is_flag=True, help="With --failed: list what would be retried, send nothing.")
@click.option("--yes", is_flag=True, help="With --failed: do not ask for confirmation.")
def retry(external_id, bulk, step, reason, since, until, lane, from_step, fixed, charges_checked, wait, timeout,
          dry_run, yes) -> None:
    """Retry an order from the step that failed (work already done in Keap is not repeated; a done order is left
    as it is), or with --failed every failed order that --step, --reason, --since, --until and --lane pick (listed
    first, then confirmed).

    For one order, --lane sends it on that lane; with --failed it picks the orders of that lane."""
    if bulk == bool(external_id):
        raise click.UsageError("give one order ID, or --failed with filters")
    if not bulk:
        if any((step, reason, since, until, dry_run, yes)):
            raise click.UsageError("--step, --reason, --since, --until, --dry-run and --yes go with --failed")
        sent = _retry_one(order_id(external_id), from_step, fixed, lane, charges_checked)
    else:
        if fixed or charges_checked:
            raise click.UsageError("--file and --charges-checked are for one order at a time")
        sent = _retry_failed(_which(base.ledger(), step, reason, since, until, lane), from_step, dry_run, yes)
    if wait and sent:
        sys.exit(_wait_for(sent, timeout))


def _retry_one(external_id, from_step, fixed, lane, charges_checked) -> list[str]:
    try:
        order = _fixed_order(fixed) if fixed else None
        result = base.producer().retry_order(external_id, from_step=from_step, order=order, lane=lane,
                                             charges_checked=charges_checked)
    except (LookupError, ValueError, OrderInvalid) as exc:
        raise click.ClickException(str(exc)) from exc
    if result.status == "done" and not result.sent:
        click.echo(f"order {external_id}: already done in Keap; nothing was sent (--from-step STEP runs a step "
                   "again)")
        return []
    click.echo(f"order {result.external_id}: {result.status}")
    return [external_id]


def _fixed_order(stream) -> dict:
    """The order of `--file`: the order itself, or an `export --with-message` record (its `message`)."""
    try:
        data = json.load(stream)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--file") from None
    if isinstance(data, dict) and "message" in data and "status" in data:
        if not data["message"]:
            raise click.BadParameter("this export has no order in it: export it again with --with-message",
                                     param_hint="--file")
        return data["message"]
    return data


def _wait_for(external_ids: list[str], timeout: float) -> int:
    """Poll the ledger until every order is done, failed or cancelled: EXIT_OK when all are done."""
    ledger, deadline = base.ledger(), time.monotonic() + timeout
    while True:
        states = {ext: ledger.get(ext) for ext in external_ids}
        settled = all(s.status in ("done", "failed", "cancelled") and not s.single for s in states.values())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for ext, state in states.items():
        if state.status != "done":
            click.echo(f"order {ext}: {state.status}" + (f": {state.error}" if state.status == "failed" else ""),
                       err=True)
    finished = sum(s.status == "done" for s in states.values())
    click.echo(f"{finished} of {len(states)} order(s) done" + ("" if settled else f" (stopped waiting after "
                                                                                  f"{span(timeout)})"))
    return EXIT_OK if finished == len(states) else EXIT_FAILED


def _retry_failed(which, from_step, dry_run, yes) -> list[str]:
    producer = base.producer()
    rows, _ = failed_orders(producer.ledger, which)
    _failed_rows(producer.ledger, rows)
    if not rows:
        click.echo("no failed order matches", err=True)
        return []
    if dry_run:
        click.echo(f"dry run: {len(rows)} order(s) would be retried; nothing was sent", err=True)
        return []
    if not yes and not click.confirm(f"Retry these {len(rows)} order(s)?", err=True):
        raise click.ClickException("nothing was retried")
    problems, sent = [], []
    for row in rows:
        try:
            producer.retry_order(row.external_id, from_step=from_step)
            sent.append(row.external_id)
        except (LookupError, ValueError, OrderInvalid) as exc:
            problems.append(f"{row.external_id}: {exc}")
    for problem in problems:
        click.echo(f"not retried: {problem}", err=True)
    click.echo(f"retried {len(sent)} of {len(rows)} order(s)")
    if problems:
        sys.exit(EXIT_ERROR)
    return sent


@click.command(epilog="\b\nExamples:\n  keap-orders export '#1001' > order.json\n"
                      "  keap-orders export shopify:1001 --with-message > order.json   (then fix it and: "
                      "keap-orders retry shopify:1001 --file order.json)")
@click.argument("external_id")
@click.option("--with-message", is_flag=True,
              help="Include the stored order (the customer's name, email, addresses): handle it as personal data.")
def export(external_id, with_message) -> None:
    """Print an order's ledger record as JSON for support: status, steps, errors, Keap ids, unanswered writes, times.
    No customer data unless --with-message; `retry --file` reads this output back (its message)."""
    ledger = base.ledger()
    state = ledger.get(order_id(external_id))
    if with_message:
        click.echo("warning: this record contains the customer's personal data (name, email, addresses); share it "
                   "only where such data may go, and delete it when done", err=True)
    click.echo(json.dumps(record_of(state, ledger.now(), with_message=with_message), indent=2, default=str))


@click.command(epilog="\b\nExamples:\n  keap-orders cancel '#1001'\n  keap-orders cancel shopify:1001 --yes")
@click.argument("external_id")
@click.option("--yes", is_flag=True, help="Do not ask, even for an order that is already done in Keap.")
def cancel(external_id, yes) -> None:
    """Stop an order for good: steps not yet run are skipped (what is already in Keap stays)."""
    ledger = base.ledger()
    external_id = order_id(external_id)
    state = ledger.get(external_id)
    if state.status == "cancelled":
        click.echo(f"order {external_id}: already cancelled")
        return
    if state.status == "done":
        click.echo(f"order {external_id} is done: it is already in Keap ({_keap_ids(state)}); cancelling only "
                   "stops keap-orders from touching it again. Nothing is removed from Keap.", err=True)
    elif state.results:
        click.echo(f"order {external_id} is {state.status}; part of it is in Keap already ({_keap_ids(state)}) and "
                   "stays there.", err=True)
    if state.status == "done" and not yes and not click.confirm("Cancel it anyway?", err=True):
        raise click.ClickException("nothing was cancelled")
    ledger.cancel(external_id)
    click.echo(f"order {external_id}: cancelled")


def _keap_ids(state) -> str:
    return ", ".join(f"{what}={value}" for what, value in sorted(state.results.items())) or "no Keap ids recorded"


@click.command(epilog="\b\nExamples:\n  keap-orders gc --dry-run\n  keap-orders gc --older-than-days 90")
@click.option("--older-than-days", type=float, default=None,
              help="Compact done orders that finished longer ago than this (default: DONE_RETENTION_DAYS).")
@click.option("--dry-run", is_flag=True, help="Count what would be compacted, change nothing.")
@click.option("--index-existing", is_flag=True,
              help="First index orders written before this version: done orders by finish time, the search indexes "
                   "(email, Keap ids) and the counts by lane (reads every order once).")
def gc(older_than_days, dry_run, index_existing) -> None:
    """Compact done orders past their retention to a small marker: status and the Keap ids that keep a re-sent
    order from being written again; the order's data goes. The keeper does the same a batch at a time."""
    settings, ledger = base.settings(), base.ledger()
    days = settings.done_retention_days if older_than_days is None else older_than_days
    if days <= 0:
        raise click.ClickException("retention is off (DONE_RETENTION_DAYS=0); pass --older-than-days")
    if index_existing:
        click.echo(f"indexed {ledger.index_done()} done order(s) that were not indexed yet")
        click.echo(f"search indexes: read {ledger.index_existing():,} order(s); counts by lane: "
                   + ", ".join(f"{lane} {sum(c.values()):,}" for lane, c in ledger.count_lanes().items()))
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
