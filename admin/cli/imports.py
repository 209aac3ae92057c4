"""Importing a file: `backfill`, the read-only `doctor` and `verify` around it, `quota` (the shared limits and
what a file needs), and `schema` (one order message)."""
from __future__ import annotations

import codecs
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from admin.cli import base
from admin.cli.base import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID_ROWS, EXIT_OK
from admin.doctor import Report, check_account, check_file
from admin.estimate import estimate_file, plan
from admin.verify import verify_file
from producers import backfill as bf
from producers.sources import FORMATS
from producers.sources.base import ReadOptions
from worker.app import app
from worker.context import NoCredential, throttle
from worker.contract import order_json_schema


def read_options(command):
    """The options that say how to read a file (backfill, verify), turned into `read_options=ReadOptions`."""

    def encoding(ctx, param, value):
        if value:
            try:
                codecs.lookup(value)
            except LookupError:
                raise click.BadParameter(f"{value!r} is not an encoding Python knows (e.g. utf-8, cp1252)") from None
        return value

    options = [
        click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
                     help="Default: detected from the file's content (header row or first JSON document)."),
        click.option("--encoding", default=None, callback=encoding,
                     help="The file's text encoding when it has no BOM (default UTF-8), e.g. cp1252."),
        click.option("--id-prefix", default=None,
                     help="Prefix of each order's external id (default: SHOPIFY_ID_PREFIX / WOOCOMMERCE_ID_PREFIX for "
                          "store exports, none for ours)."),
        click.option("--store-timezone", default=None,
                     help="Time zone of exports whose times have no offset (default: STORE_TIMEZONE)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _read_options(encoding, id_prefix, store_timezone):
    if store_timezone:
        try:
            ZoneInfo(store_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(f"{store_timezone!r} is not a time zone (e.g. America/New_York)",
                                     param_hint="--store-timezone") from None
    return ReadOptions.from_settings(encoding=encoding, id_prefix=id_prefix, store_timezone=store_timezone)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
@click.option("--wait", is_flag=True, help="Wait until every order has finished; exit 0 only if all valid ones are done.")
@click.option("--dry-run", is_flag=True, help="Validate; resolve SKUs and plans against Keap; check payment types; write nothing.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True), help="Also write row errors and failures here.")
@click.option("--window", type=int, default=None, help="Orders in flight at most (default: BACKFILL_WINDOW).")
def backfill(file, fmt, encoding, id_prefix, store_timezone, wait, dry_run, report, window) -> None:
    """Import an order file (ours, or a Shopify / WooCommerce export) on the backfill lane.

    Exit status: 0 all rows valid (and, with --wait, every order done); 3 some rows invalid; 4 some orders
    failed or did not finish; 130 interrupted (re-run the same command to resume); 1 the file could not be read.
    """
    settings = base.settings()
    options = _read_options(encoding, id_prefix, store_timezone)
    if dry_run:
        ok, bad = bf.dry_run(file, fmt, base.keap_context(), settings.payment_types, options=options)
        click.echo(f"dry run: {ok} orders ready, {bad} with problems; nothing was written to Keap")
        _print_estimate(file, fmt, options)
        sys.exit(EXIT_INVALID_ROWS if bad else EXIT_OK)
    _warn_without_worker(settings)
    report_fh = open(report, "w", encoding="utf-8") if report else None
    job = bf.Backfill(base.producer(), window=window or settings.backfill_window, report=report_fh)
    try:
        progress = job.run(file, fmt, wait=wait, options=options)
    except KeyboardInterrupt:
        click.echo("\n" + interrupted(getattr(job, "progress", None), sys.argv), err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    finally:
        if report_fh:
            report_fh.close()
    click.echo(progress.summary(wait))
    sys.exit(exit_code(progress, wait))


def exit_code(progress, waited: bool) -> int:
    """0 only when every row was valid and (having waited) every valid order is done."""
    if progress.conflicts or (waited and (progress.failed or progress.stalled or progress.done < progress.valid)):
        return EXIT_FAILED
    if progress.invalid:
        return EXIT_INVALID_ROWS
    return EXIT_OK


def interrupted(progress, argv: list[str]) -> str:
    command = " ".join(["keap-orders", *argv[1:]])
    if progress is None:
        return f"interrupted before any order was sent; run it again: {command}"
    return (f"interrupted: {progress.sent} order(s) sent by this run, {progress.done} done, {progress.failed} failed, "
            f"{progress.invalid} invalid row(s), {len(progress.in_flight)} still in flight (the workers finish them).\n"
            f"To resume, run the same command again; orders already sent or done are not sent twice:\n  {command}")


def _warn_without_worker(settings) -> None:
    """Orders would wait in Redis forever with no worker on the lane: say so instead of a frozen progress bar."""
    queue = settings.backfill_queue
    answers = app.control.inspect(timeout=1.0).active_queues() or {}
    if not any(q.get("name") == queue for queues in answers.values() for q in queues):
        click.echo(f"warning: no worker is consuming {queue}; orders stay queued until one runs, e.g.\n"
                   f"  celery -A worker.app worker -Q {settings.live_queue},{queue}", err=True)


@click.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def quota(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Keap's limits as the workers share them: each window's use, what Keap last said, the backfill's share;
    with FILE, the calls it needs and the days that takes."""
    scopes = _limits_now()
    for scope in scopes:
        day, window, said = scope["day"], scope["window"], scope["keap_said"]
        click.echo(f"{scope['kind']} {scope['key'].rsplit(':', 1)[-1]} ({scope['limits']}):")
        if window:
            click.echo(f"  last {window['seconds']} s: {window['used']:,} of {window['limit']:,} calls")
        click.echo(f"  today (UTC): {day['total']:,}" + (f" of {day['limit']:,}" if day["limit"] else "")
                   + f" calls (live {day['live']:,}, backfill {day['backfill']:,}"
                   + (f" of its {scope['backfill_allowed']:,})" if scope["backfill_allowed"] is not None else ")"))
        if scope["paused_for"]:
            click.echo(f"  paused for {scope['paused_for']:.1f} s after a 429")
        if said:
            click.echo(f"  Keap said {scope['keap_said_ago']:.0f} s ago: " + ", ".join(
                f"{name} {value}" for name, value in said.items() if name != "status") + f" (HTTP {said['status']})")
        else:
            click.echo("  Keap has said nothing yet (no call since the counters were last kept)")
    if file is not None:
        _print_estimate(file, fmt, _read_options(encoding, id_prefix, store_timezone), scopes)


def _limits_now() -> list[dict]:
    """The shared throttle's state per scope (credential, account), read from Redis."""
    try:
        return throttle(base.settings()).snapshot()
    except NoCredential as exc:
        raise click.ClickException(str(exc)) from exc


def _print_estimate(file: Path, fmt: str | None, options, scopes: list[dict] | None = None) -> None:
    """The calls FILE needs and the days that takes at the current limits (quota, backfill --dry-run)."""
    for line in plan(estimate_file(file, fmt, options), _limits_now() if scopes is None else scopes):
        click.echo(line)


@click.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def doctor(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Read-only checks before a backfill: the credential and its limits, the external-id fields, and with FILE
    every order, SKU, plan and payment method, and the calls and days it will take.

    Exit status: 0 ready; 1 Keap cannot be used (credential, address); 3 the file has problems (listed by line).
    """
    settings, report = base.settings(), Report()
    options = _read_options(encoding, id_prefix, store_timezone)
    ctx = base.keap_context()
    usable = check_account(ctx, settings, report)
    if usable and file is not None:
        check_file(file, fmt, ctx, settings, options, report, sys.stdout)
    for verdict, check, detail in report.lines:
        click.echo(f"{verdict:>7}  {check}: {detail}")
    if usable and file is not None:
        _print_estimate(file, fmt, options)
    sys.exit(EXIT_ERROR if not usable else EXIT_INVALID_ROWS if report.failed else EXIT_OK)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def verify(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Read the imported orders of FILE back from Keap and report every difference (read-only)."""
    options = _read_options(encoding, id_prefix, store_timezone)
    checked, problems = verify_file(file, fmt, base.keap_context(), options)
    for problem in problems:
        click.echo(problem)
    click.echo(f"verified {checked} orders: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


@click.command()
def schema() -> None:
    """Print the JSON Schema of one order message."""
    click.echo(json.dumps(order_json_schema(), indent=2))


COMMANDS = (backfill, doctor, quota, schema, verify)
