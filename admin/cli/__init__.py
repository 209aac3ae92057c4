"""The `keap-orders` command: sandbox, demo, backfill, verify, schema, the operator's status/failed/retry/cancel/
export/gc, the metrics endpoint, and `auth` (OAuth login, status, refresh, logout)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from worker.messages import OrderInvalid
from worker.pipeline import LANES, STEP_NAMES
from worker.settings import Settings
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


def _settings() -> Settings:
    """The settings of this command (environment and .env), read once, and the Celery app pointed at them."""
    root = click.get_current_context().find_root()
    if root.obj is None:
        from worker.app import configure

        root.obj = Settings()
        configure(root.obj)
    return root.obj


def _ledger():
    from worker.context import ledger

    return ledger(_settings())


def _producer():
    from producers.enqueue import Producer

    return Producer(_settings(), _ledger())


def _context():
    from worker.context import NoCredential, build_context

    try:
        return build_context(_settings())
    except NoCredential as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--api-key", default=None, help="The X-Keap-API-Key it accepts (default: the sandbox's public test key).")
@click.option("--limits", default="oauth", show_default=True, help="oauth, sak, off, or e.g. '20/s,600/min,5000/day'.")
@click.option("--latency-ms", default=0, show_default=True, type=int, help="Added to every API answer.")
@click.option("--seed", default=None, type=int, help="Seed for reproducible faults.")
@click.option("--data", default=None, type=click.Path(exists=True, dir_okay=False), help="Seed data JSON file.")
@click.option("--token-ttl", default=86400, show_default=True, type=int, help="OAuth access token lifetime (s).")
def sandbox(host, port, api_key, limits, latency_ms, seed, data, token_ttl) -> None:
    """Run the local Keap sandbox until interrupted."""
    run = _sandbox_module("server").run

    key = {"api_key": api_key} if api_key else {}
    run(host=host, port=port, limits=limits, latency_ms=latency_ms, seed=seed, data=data, token_lifetime=token_ttl,
        **key)


@main.command()
@click.option("--orders", "orders_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Orders to import (default: examples/orders.jsonl).")
def demo(orders_file) -> None:
    """Sandbox + worker + backfill of the example orders, then a summary. Needs only Redis."""
    from admin.demo import run_demo

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

    settings = _settings()
    options = _read_options(encoding, id_prefix, store_timezone)
    if dry_run:
        ok, bad = bf.dry_run(file, fmt, _context(), settings.payment_types, options=options)
        click.echo(f"dry run: {ok} orders ready, {bad} with problems; nothing was written to Keap")
        _print_estimate(file, fmt, options)
        sys.exit(EXIT_INVALID_ROWS if bad else EXIT_OK)
    _warn_without_worker(settings)
    report_fh = open(report, "w", encoding="utf-8") if report else None
    job = bf.Backfill(_producer(), window=window or settings.backfill_window, report=report_fh)
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
    if waited and (progress.failed or progress.stalled or progress.done < progress.valid):
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


@main.command()
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
    from worker.context import NoCredential, throttle

    try:
        return throttle(_settings()).snapshot()
    except NoCredential as exc:
        raise click.ClickException(str(exc)) from exc


def _print_estimate(file: Path, fmt: str | None, options, scopes: list[dict] | None = None) -> None:
    """The calls FILE needs and the days that takes at the current limits (quota, backfill --dry-run)."""
    from admin.estimate import estimate_file, plan

    for line in plan(estimate_file(file, fmt, options), _limits_now() if scopes is None else scopes):
        click.echo(line)


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def doctor(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Read-only checks before a backfill: the credential and its limits, the external-id fields, and with FILE
    every order, SKU, plan and payment method, and the calls and days it will take.

    Exit status: 0 ready; 1 Keap cannot be used (credential, address); 3 the file has problems (listed by line).
    """
    from admin.doctor import Report, check_account, check_file

    settings, report = _settings(), Report()
    options = _read_options(encoding, id_prefix, store_timezone)
    ctx = _context()
    usable = check_account(ctx, settings, report)
    if usable and file is not None:
        check_file(file, fmt, ctx, settings, options, report, sys.stdout)
    for verdict, check, detail in report.lines:
        click.echo(f"{verdict:>7}  {check}: {detail}")
    if usable and file is not None:
        _print_estimate(file, fmt, options)
    sys.exit(EXIT_ERROR if not usable else EXIT_INVALID_ROWS if report.failed else EXIT_OK)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@read_options
def verify(file, fmt, encoding, id_prefix, store_timezone) -> None:
    """Read the imported orders of FILE back from Keap and report every difference (read-only)."""
    from admin.verify import verify_file

    options = _read_options(encoding, id_prefix, store_timezone)
    checked, problems = verify_file(file, fmt, _context(), options)
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (times as epoch seconds).")
def status(external_id, as_json) -> None:
    """Show one order: status, current or failed step, parked-until time, error, Keap ids."""
    from admin.console import describe

    ledger = _ledger()
    state = ledger.get(external_id)
    if state is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    click.echo(json.dumps(state.as_dict(), indent=2, default=str) if as_json else describe(state, ledger.now()))


@main.command()
@click.option("--older-than", default=300.0, show_default=True, help="Seconds without a change.")
@click.option("--limit", default=100, show_default=True)
def stuck(older_than, limit) -> None:
    """Orders that are not moving: how long, at which step, and why if known."""
    from admin.console import span
    from admin.console import stuck as find_stuck

    rows = find_stuck(_ledger(), older_than, limit)
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
    from admin.console import FailedFilter, moment

    now = ledger.now()
    try:
        return FailedFilter(step=step, reason=reason, lane=lane, since=moment(since, now) if since else None,
                            until=moment(until, now) if until else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from None


def _failed_rows(ledger, rows) -> None:
    from admin.console import when

    now = ledger.now()
    for row in rows:
        click.echo(f"{row.external_id}\t{row.step}\t{row.kind}\t{when(row.failed_at, now)}\t{row.error}")


@main.command()
@failed_filters
@click.option("--limit", default=50, show_default=True)
def failed(step, reason, since, until, lane, limit) -> None:
    """List failed orders (oldest failure first) with the step, error kind, time and reason."""
    from admin.console import failed_orders

    ledger = _ledger()
    rows, total = failed_orders(ledger, _which(ledger, step, reason, since, until, lane))
    _failed_rows(ledger, rows[:limit])
    shown = f", {limit} shown" if len(rows) > limit else ""
    click.echo(f"{len(rows)} of {total} failed order(s) match{shown}", err=True)


@main.command()
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
    _retry_failed(_which(_ledger(), step, reason, since, until, lane), from_step, dry_run, yes)


def _retry_one(external_id, from_step, fixed, lane, charges_checked) -> None:
    try:
        result = _producer().retry_order(external_id, from_step=from_step, order=json.load(fixed) if fixed else None,
                                         lane=lane, charges_checked=charges_checked)
    except (LookupError, ValueError, OrderInvalid) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"order {result.external_id}: {result.status}")


def _retry_failed(which, from_step, dry_run, yes) -> None:
    from admin.console import failed_orders

    producer = _producer()
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


@main.command()
@click.argument("external_id")
@click.option("--with-message", is_flag=True,
              help="Include the stored order (the customer's name, email, addresses): handle it as personal data.")
def export(external_id, with_message) -> None:
    """Print an order's ledger record as JSON for support: status, steps, errors, Keap ids, unanswered writes, times.
    No customer data unless --with-message."""
    from admin.console import export as record_of

    ledger = _ledger()
    state = ledger.get(external_id)
    if state is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    if with_message:
        click.echo("warning: this record contains the customer's personal data (name, email, addresses); share it "
                   "only where such data may go, and delete it when done", err=True)
    click.echo(json.dumps(record_of(state, ledger.now(), with_message=with_message), indent=2, default=str))


@main.command()
@click.option("--older-than-days", type=float, default=None,
              help="Compact done orders that finished longer ago than this (default: DONE_RETENTION_DAYS).")
@click.option("--dry-run", is_flag=True, help="Count what would be compacted, change nothing.")
@click.option("--index-existing", is_flag=True,
              help="First index done orders that finished before this version (reads every done order once).")
def gc(older_than_days, dry_run, index_existing) -> None:
    """Compact done orders past their retention to a small marker: status and the Keap ids that keep a re-sent
    order from being written again; the order's data goes. The keeper does the same a batch at a time."""
    settings, ledger = _settings(), _ledger()
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


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=9808, show_default=True, type=int)
@click.option("--ledger/--no-ledger", default=True, show_default=True,
              help="Also serve the ledger's gauges (orders per status, queue lengths); --no-ledger for a sidecar of "
                   "one worker pod when another endpoint serves them.")
def metrics(host, port, ledger) -> None:
    """Serve Prometheus metrics on http://HOST:PORT/metrics: what every worker process of this host wrote under
    PROMETHEUS_MULTIPROC_DIR, plus the ledger's gauges (orders per status, queue lengths) read at scrape time."""
    import threading

    from worker import metrics as found

    settings = _settings()
    if not settings.prometheus_multiproc_dir and ledger:
        click.echo("note: PROMETHEUS_MULTIPROC_DIR is not set: only the ledger's gauges are served", err=True)
    elif not settings.prometheus_multiproc_dir:
        raise click.ClickException("nothing to serve: set PROMETHEUS_MULTIPROC_DIR, or drop --no-ledger")
    queues = (settings.live_queue, settings.backfill_queue, settings.keeper_queue)
    found.serve(found.registry(settings.prometheus_multiproc_dir, _ledger() if ledger else None, queues), host, port)
    click.echo(f"serving metrics on http://{host}:{port}/metrics", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("external_id")
def cancel(external_id) -> None:
    """Stop an order: steps not yet run are skipped (what is already in Keap stays)."""
    ledger = _ledger()
    if ledger.get(external_id) is None:
        raise click.ClickException(f"order {external_id}: not in the ledger")
    ledger.cancel(external_id)
    click.echo(f"order {external_id}: cancelled")


def _tokens():
    from worker.context import NoCredential, oauth_tokens

    settings = _settings()
    if not settings.keap_client_id:
        raise click.ClickException("OAuth is not configured: set KEAP_CLIENT_ID, KEAP_CLIENT_SECRET, KEAP_REDIRECT_URI "
                                   "and TOKEN_ENCRYPTION_KEY (see `keap-orders auth login --help`)")
    try:
        return oauth_tokens(settings)
    except NoCredential as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def auth() -> None:
    """Authorise keap-orders with Keap (OAuth2); its tokens are kept in Redis, encrypted, and refreshed by the
    workers (one refresh for the whole fleet)."""


@auth.command("login")
@click.option("--listen", is_flag=True,
              help="Catch Keap's redirect on KEAP_REDIRECT_URI (a loopback address such as http://127.0.0.1:8765/"
                   "callback) instead of asking you to paste it.")
@click.option("--timeout", default=300.0, show_default=True, help="With --listen: seconds to wait for the redirect.")
def auth_login(listen, timeout) -> None:
    """Authorise the Keap app: open the printed address, sign in and allow access, then paste the address Keap
    sends the browser to (or use --listen). Stores the tokens and resumes orders waiting for re-authorisation.

    Needs KEAP_CLIENT_ID, KEAP_CLIENT_SECRET, KEAP_REDIRECT_URI and TOKEN_ENCRYPTION_KEY (a Fernet key that
    encrypts the tokens in Redis; every worker needs the same one). Make a key with:

    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
    """
    from admin import auth as flow
    from admin.console import when
    from worker.keap import KeapError

    settings = _settings()
    tokens = _tokens()
    if not settings.keap_redirect_uri:
        raise click.ClickException("set KEAP_REDIRECT_URI to the redirect URI registered for the Keap app")
    state = flow.new_state()
    try:
        catcher = flow.RedirectCatcher(settings.keap_redirect_uri, state) if listen else None
        click.echo(f"Open this address in a browser, sign in to Keap and allow access:\n\n  "
                   f"{flow.authorize_url(settings, state)}\n")
        if catcher is not None:
            click.echo(f"Waiting for Keap's redirect to {settings.keap_redirect_uri} ...")
            code = catcher.wait(timeout)
        else:
            code, checked = flow.code_from(click.prompt("Paste the address the browser was sent to (or only the code)"),
                                           state)
            if not checked:
                click.echo("note: a bare code cannot be checked against this login's state", err=True)
        pair, released = flow.complete(tokens, _ledger(), code, settings.keap_redirect_uri)
    except flow.LoginError as exc:
        raise click.ClickException(str(exc)) from None
    except KeapError as exc:
        raise click.ClickException(f"{exc}; run `keap-orders auth login` again") from None
    except TimeoutError:
        raise click.ClickException("a token refresh is under way and did not finish; try again") from None
    click.echo(f"authorised: tokens stored (encrypted); the access token expires "
               f"{when(pair.expires_at, pair.refreshed_at)}")
    click.echo(f"resumed {released} order(s) that were waiting for re-authorisation")


@auth.command("status")
def auth_status() -> None:
    """When the tokens expire, the last refresh, whether the fleet is paused (never the tokens)."""
    from admin import auth as flow

    shown = _tokens().status()
    for line in flow.status_lines(shown, _ledger().held_count("reauth")):
        click.echo(line)


@auth.command("refresh")
def auth_refresh() -> None:
    """Refresh the tokens now (the workers do it by themselves ahead of expiry)."""
    from admin.console import when
    from worker.keap import KeapError

    try:
        pair = _tokens().refresh()
    except KeapError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"refreshed: the access token expires {when(pair.expires_at, pair.refreshed_at)}")


@auth.command("logout")
def auth_logout() -> None:
    """Delete the stored tokens: workers stop calling Keap and orders wait until `keap-orders auth login`."""
    deleted = _tokens().forget()
    click.echo("deleted the stored tokens" if deleted else "no tokens were stored")


def _sandbox_module(name: str):
    """A module of the optional sandbox package, or a clear error on an install without it."""
    import importlib

    try:
        return importlib.import_module(f"sandbox.{name}")
    except ImportError as exc:
        raise click.ClickException("the local Keap sandbox is not installed here: pip install 'keap-orders[sandbox]' "
                                   f"(or run `make`, which installs it) [{exc}]") from exc

