"""Importing a file: `backfill`, the read-only `doctor` and `verify` around it, `quota` (the shared limits and
what a file needs), and `schema` (one order message)."""
from __future__ import annotations

import codecs
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from admin.cli import base, jobs
from admin.cli.base import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID_ROWS, EXIT_KEAP, EXIT_OK
from admin.doctor import Report, check_account, check_file, limits_lines
from admin.estimate import estimate_file, plan
from admin.probe import run as probe_account
from admin.verify import verify_file
from producers import backfill as bf
from producers.sources import FORMATS
from producers.sources import check_file as file_warnings
from producers.sources.base import ReadOptions
from worker.app import app
from worker.context import throttle
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


def _warn_about(file: Path, fmt: str | None, options) -> None:
    """Refuse a file that cannot be imported (FileRejected), and say which optional columns it lacks."""
    for warning in file_warnings(file, fmt, options):
        click.echo(f"warning: {warning}", err=True)


@click.command(epilog="\b\nExamples:\n  keap-orders backfill orders.jsonl --dry-run\n"
                      "  keap-orders backfill orders_export.csv --wait --report import-report.txt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
@click.option("--wait", is_flag=True, help="Wait until every order has finished; exit 0 only if all valid ones are done.")
@click.option("--dry-run", is_flag=True, help="Validate; resolve SKUs and plans against Keap; check payment types; write nothing.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True), help="Also write row errors and failures here.")
@click.option("--window", type=int, default=None, help="Orders in flight at most (default: BACKFILL_WINDOW).")
@click.option("--detach", is_flag=True, help="Record a job for a feeder (Procfile `feeder`) and return: `keap-orders jobs`.")
def backfill(file, fmt, encoding, id_prefix, store_timezone, wait, dry_run, report, window, detach) -> None:
    """Import an order file (ours, or a Shopify / WooCommerce export) on the backfill lane.

    Exit status: 0 all rows valid (and, with --wait, every order done); 3 some rows invalid; 4 some orders
    failed or did not finish; 130 interrupted (re-run the same command to resume); 1 the file cannot be used;
    5 Redis, 6 Keap cannot be used (see keap-orders --help).
    """
    settings = base.settings()
    options = _read_options(encoding, id_prefix, store_timezone)
    if detach:
        if wait or dry_run or report:
            raise click.UsageError("--detach goes without --wait, --dry-run and --report (`keap-orders jobs` follows it)")
        return jobs.detach(file, fmt, {"encoding": encoding, "id_prefix": id_prefix, "store_timezone": store_timezone},
                           window, options)
    _warn_about(file, fmt, options)
    if dry_run:
        ok, bad = bf.dry_run(file, fmt, base.checked_keap_context(), settings.payment_types, options=options)
        click.echo(f"dry run: {ok} orders ready, {bad} with problems; nothing was written to Keap")
        _print_estimate(file, fmt, options)
        sys.exit(EXIT_INVALID_ROWS if bad else EXIT_OK)
    base.checked_keap_context()  # a wrong key or an unreachable Keap stops here, not in every order
    _warn_without_worker(settings)
    report_fh = open(report, "w", encoding="utf-8") if report else None
    job = bf.Backfill(base.producer(), window=window or settings.backfill_window, report=report_fh)
    try:
        progress = job.run(file, fmt, wait=wait, options=options)
    except KeyboardInterrupt:
        click.echo("\n" + interrupted(getattr(job, "progress", None), sys.argv), err=True)
        sys.exit(EXIT_INTERRUPTED)
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


@click.command(epilog="\b\nExamples:\n  keap-orders quota\n  keap-orders quota orders.jsonl --json")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
def quota(file, fmt, encoding, id_prefix, store_timezone, as_json) -> None:
    """Keap's limits as the workers share them: each window's use, what Keap last said, the backfill's share;
    with FILE, the calls it needs and the days that takes. Reads Redis only (doctor asks Keap)."""
    scopes = _limits_now()
    options = _read_options(encoding, id_prefix, store_timezone) if file is not None else None
    if file is not None:
        _warn_about(file, fmt, options)
    estimate = estimate_file(file, fmt, options) if file is not None else None
    if as_json:
        click.echo(json.dumps({"scopes": scopes, **({"file": {"orders": estimate.orders, "invalid": estimate.invalid,
                                                              "calls": estimate.calls}} if estimate else {})},
                              indent=2, default=str))
        return
    for line in limits_lines(scopes):
        click.echo(line)
    if estimate is not None:
        for line in plan(estimate, scopes):
            click.echo(line)


def _limits_now() -> list[dict]:
    """The shared throttle's state per scope (credential, account), read from Redis."""
    return throttle(base.settings(), base.redis_client()).snapshot()


def _print_estimate(file: Path, fmt: str | None, options) -> None:
    """The calls FILE needs and the days that takes at the current limits (doctor, backfill --dry-run)."""
    for line in plan(estimate_file(file, fmt, options), _limits_now()):
        click.echo(line)


@click.command(epilog="\b\nExamples:\n  keap-orders doctor\n  keap-orders doctor orders_export.csv")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
@click.option("--probe", is_flag=True, help="Also find out how the account reads what Keap leaves undocumented "
              "(one draft order, deleted at once; docs/probe.md) and store it for the workers.")
@click.option("--promo-code", default=None, help="With --probe: a promo code of the account, to learn whether Keap "
                                                 "applies it beside discount lines.")
def doctor(file, fmt, encoding, id_prefix, store_timezone, probe, promo_code) -> None:
    """Read-only checks before a backfill: the credential and its limits, the external-id fields, and with FILE
    every order, SKU, plan and payment method, and the calls and days it will take.

    Exit status: 0 ready; 6 Keap cannot be used (credential, address); 3 the file has problems (listed by line);
    1 the file cannot be used.
    """
    settings, report = base.settings(), Report()
    options = _read_options(encoding, id_prefix, store_timezone)
    if file is not None:
        _warn_about(file, fmt, options)
    ctx = base.keap_context()
    usable = check_account(ctx, settings, report, _limits_now())
    if usable and probe:
        probe_account(ctx, report, promo_code)
    if usable and file is not None:
        check_file(file, fmt, ctx, settings, options, report, sys.stdout)
    for verdict, check, detail in report.lines:
        click.echo(f"{verdict:>7}  {check}: {detail}")
    if usable and file is not None:
        _print_estimate(file, fmt, options)
    sys.exit(EXIT_KEAP if not usable else EXIT_INVALID_ROWS if report.failed else EXIT_OK)


@click.command(epilog="\b\nExample:\n  keap-orders verify orders_export.csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def verify(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Read the imported orders of FILE back from Keap and report every difference (read-only).

    Exit status: 0 no difference; 1 differences (each listed); 5 Redis, 6 Keap cannot be used."""
    options = _read_options(encoding, id_prefix, store_timezone)
    _warn_about(file, fmt, options)
    checked, problems = verify_file(file, fmt, base.checked_keap_context(), options)
    for problem in problems:
        click.echo(problem)
    click.echo(f"verified {checked} orders: {len(problems)} problem(s)")
    sys.exit(EXIT_ERROR if problems else EXIT_OK)


@click.command(epilog="\b\nExample:\n  keap-orders schema > order.schema.json")
def schema() -> None:
    """Print the JSON Schema of one order message."""
    click.echo(json.dumps(order_json_schema(), indent=2))


COMMANDS = (backfill, doctor, quota, schema, verify)
