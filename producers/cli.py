"""The `keap-orders` command: sandbox, demo, backfill, verify, schema, and the operator's
status/failed/retry/cancel."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sandbox.auth import API_KEY as SANDBOX_API_KEY
from worker.messages import OrderInvalid

STEP_NAMES = ("create_order", "add_items", "record_payment", "set_custom_fields", "create_subscription")
# Exit codes of `backfill` (README, "Using it"); click itself exits 2 on a usage error.
EXIT_OK, EXIT_ERROR, EXIT_INVALID_ROWS, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


def _format_names() -> list[str]:
    from producers.sources import FORMATS

    return list(FORMATS)


def read_options(command):
    """The options that say how to read a file (backfill, verify), turned into `read_options=ReadOptions`."""

    def encoding(ctx, param, value):
        import codecs

        if value:
            try:
                codecs.lookup(value)
            except LookupError:
                raise click.BadParameter(f"{value!r} is not an encoding Python knows (e.g. utf-8, cp1252)") from None
        return value

    options = [
        click.option("--format", "fmt", type=click.Choice(_format_names()), default=None,
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
    from producers.sources.base import ReadOptions

    if store_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(store_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(f"{store_timezone!r} is not a time zone (e.g. America/New_York)",
                                     param_hint="--store-timezone") from None
    return ReadOptions.from_settings(encoding=encoding, id_prefix=id_prefix, store_timezone=store_timezone)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Import complete orders into Keap, exactly once, through Celery workers."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--api-key", default=SANDBOX_API_KEY, show_default=True, help="The X-Keap-API-Key it accepts.")
@click.option("--limits", default="oauth", show_default=True, help="oauth, sak, off, or e.g. '20/s,600/min,5000/day'.")
@click.option("--latency-ms", default=0, show_default=True, type=int, help="Added to every API answer.")
@click.option("--seed", default=None, type=int, help="Seed for reproducible faults.")
@click.option("--data", default=None, type=click.Path(exists=True, dir_okay=False), help="Seed data JSON file.")
def sandbox(host, port, api_key, limits, latency_ms, seed, data) -> None:
    """Run the local Keap sandbox until interrupted."""
    from sandbox.server import run

    run(host=host, port=port, api_key=api_key, limits=limits, latency_ms=latency_ms, seed=seed, data=data)


@main.command()
@click.option("--orders", "orders_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Orders to import (default: examples/orders.jsonl).")
def demo(orders_file) -> None:
    """Sandbox + worker + backfill of the example orders, then a summary. Needs only Redis."""
    from producers.demo import run_demo

    sys.exit(run_demo(Path(orders_file) if orders_file else None))


@main.command()
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
    from producers import backfill as bf
    from producers.enqueue import default_ledger
    from worker.settings import get_settings

    options = _read_options(encoding, id_prefix, store_timezone)
    if dry_run:
        from worker.tasks import context

        types = {t.strip() for t in get_settings().manual_payment_types.split(",") if t.strip()}
        ok, bad = bf.dry_run(file, fmt, context().keap, types, options=options)
        click.echo(f"dry run: {ok} orders ready, {bad} with problems; nothing was written to Keap")
        sys.exit(EXIT_INVALID_ROWS if bad else EXIT_OK)
    _warn_without_worker(get_settings())
    report_fh = open(report, "w", encoding="utf-8") if report else None
    job = bf.Backfill(default_ledger(), window=window or get_settings().backfill_window, report=report_fh)
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
    click.echo(summary(progress, wait))
    sys.exit(exit_code(progress, wait))


def exit_code(progress, waited: bool) -> int:
    """0 only when every row was valid and (having waited) every valid order is done."""
    if waited and (progress.failed or progress.done < progress.valid):
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
    from worker.app import app

    queue = settings.backfill_queue
    answers = app.control.inspect(timeout=1.0).active_queues() or {}
    if not any(q.get("name") == queue for queues in answers.values() for q in queues):
        click.echo(f"warning: no worker is consuming {queue}; orders stay queued until one runs, e.g.\n"
                   f"  celery -A worker.app worker -Q {settings.live_queue},{queue}", err=True)


def summary(progress, waited: bool) -> str:
    lines = [f"orders in file: {progress.total}", f"invalid rows:   {progress.invalid}",
             f"done:           {progress.done} ({progress.skipped} already done before this run)",
             f"failed:         {progress.failed}"]
    if not waited:
        lines.append(f"in flight:      {len(progress.in_flight)} (follow with `keap-orders status ID`)")
    return "\n".join(lines)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def verify(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Read the imported orders of FILE back from Keap and report every difference (read-only)."""
    from producers.enqueue import default_ledger
    from producers.verify import verify_file
    from worker.tasks import context

    ctx = context()
    options = _read_options(encoding, id_prefix, store_timezone)
    checked, problems = verify_file(file, fmt, ctx.keap, default_ledger(), ctx.external_id_label, options)
    for problem in problems:
        click.echo(problem)
    click.echo(f"verified {checked} orders: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


@main.command()
def schema() -> None:
    """Print the JSON Schema of one order message."""
    from worker.messages import order_json_schema

    click.echo(json.dumps(order_json_schema(), indent=2))


@main.command()
@click.argument("external_id")
def status(external_id) -> None:
    """Show one order: status, current or failed step, error, Keap ids."""
    from producers.enqueue import default_ledger

    state = default_ledger().get(external_id)
    if state is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    click.echo(json.dumps(state.as_dict(), indent=2, default=str))


@main.command()
@click.option("--limit", default=50, show_default=True)
def failed(limit) -> None:
    """List failed orders with the step and the reason."""
    from producers.enqueue import default_ledger

    ledger = default_ledger()
    ids = ledger.ids_with_status("failed", limit)
    for ext in ids:
        state = ledger.get(ext)
        click.echo(f"{ext}\t{state.error_step}\t{state.error}")
    click.echo(f"{ledger.count('failed')} failed order(s)", err=True)


@main.command()
@click.argument("external_id")
@click.option("--from-step", type=click.Choice(STEP_NAMES), default=None, help="Default: the step that failed.")
@click.option("--file", "fixed", type=click.File("r"), default=None, help="A corrected order (JSON) to use instead.")
@click.option("--lane", type=click.Choice(["live", "backfill"]), default=None)
def retry(external_id, from_step, fixed, lane) -> None:
    """Retry an order from the step that failed (work already done in Keap is not repeated)."""
    from producers.enqueue import retry_order

    try:
        result = retry_order(external_id, from_step=from_step, order=json.load(fixed) if fixed else None, lane=lane)
    except (LookupError, ValueError, OrderInvalid) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"order {result.external_id}: {result.status}")


@main.command()
@click.argument("external_id")
def cancel(external_id) -> None:
    """Stop an order: steps not yet run are skipped (what is already in Keap stays)."""
    from producers.enqueue import default_ledger

    ledger = default_ledger()
    if ledger.get(external_id) is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    ledger.cancel(external_id)
    click.echo(f"order {external_id}: cancelled")


if __name__ == "__main__":
    main()
