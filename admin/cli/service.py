"""What runs until interrupted: the local Keap `sandbox`, the `demo` (sandbox + worker + backfill), and the
Prometheus `metrics` endpoint."""
from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import click

from admin.cli import base
from worker.ops import metrics as found


@click.command(epilog="\b\nExample:\n  keap-orders sandbox --port 8700 --limits sak")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--api-key", default=None, help="The X-Keap-API-Key it accepts (default: the sandbox's public test key).")
@click.option("--limits", default="oauth", show_default=True, help="oauth, sak, off, or e.g. '20/s,600/min,5000/day'.")
@click.option("--latency-ms", default=0, show_default=True, type=int, help="Added to every API answer.")
@click.option("--seed", default=None, type=int, help="Seed for reproducible faults.")
@click.option("--data", default=None, type=click.Path(exists=True, dir_okay=False), help="Seed data JSON file.")
@click.option("--token-ttl", default=86400, show_default=True, type=int, help="OAuth access token lifetime (s).")
@click.option("--reading", default=None, help="Other readings of what Keap leaves undocumented, comma-separated "
                                              "(docs/sandbox.md#faults-and-readings), e.g. billing-cents,no-notes.")
def sandbox(host, port, api_key, limits, latency_ms, seed, data, token_ttl, reading) -> None:
    """Run the local Keap sandbox until interrupted."""
    run = _sandbox_module("server").run
    try:
        _sandbox_module("readings").parse_readings(reading)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reading") from None

    key = {"api_key": api_key} if api_key else {}
    run(host=host, port=port, limits=limits, latency_ms=latency_ms, seed=seed, data=data, token_lifetime=token_ttl,
        readings=reading, **key)


@click.command(epilog="\b\nExamples:\n  keap-orders demo\n  keap-orders demo --orders examples/shopify_orders_export.csv")
@click.option("--orders", "orders_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Orders to import (default: examples/orders.jsonl).")
def demo(orders_file) -> None:
    """Sandbox + worker + backfill of the example orders, then a summary. Needs only Redis."""
    # Imported here, not at the top: the demo runs the sandbox, whose extra (pyyaml, jsonschema) production
    # images leave out, and every other command must work there.
    from admin.demo import run_demo

    sys.exit(run_demo(Path(orders_file) if orders_file else None))


@click.command(epilog="\b\nExample:\n  PROMETHEUS_MULTIPROC_DIR=/tmp/metrics keap-orders metrics --port 9808")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=9808, show_default=True, type=int)
@click.option("--ledger/--no-ledger", default=True, show_default=True,
              help="Also serve the ledger's gauges (orders per status, queue lengths); --no-ledger for a sidecar of "
                   "one worker pod when another endpoint serves them.")
def metrics(host, port, ledger) -> None:
    """Serve Prometheus metrics on http://HOST:PORT/metrics: what every worker process of this host wrote under
    PROMETHEUS_MULTIPROC_DIR, plus the ledger's gauges (orders per status, queue lengths) read at scrape time."""
    settings = base.settings()
    if not settings.prometheus_multiproc_dir and ledger:
        click.echo("note: PROMETHEUS_MULTIPROC_DIR is not set: only the ledger's gauges are served", err=True)
    elif not settings.prometheus_multiproc_dir:
        raise click.ClickException("nothing to serve: set PROMETHEUS_MULTIPROC_DIR, or drop --no-ledger")
    queues = (settings.live_queue, settings.backfill_queue, settings.keeper_queue)
    found.serve(found.registry(settings.prometheus_multiproc_dir, base.ledger() if ledger else None, queues), host,
                port)
    click.echo(f"serving metrics on http://{host}:{port}/metrics", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


@click.command(epilog="\b\nExample:\n  keap-orders serve --host 0.0.0.0 --port 8000")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 in a container).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Server processes (uvicorn workers).")
def serve(host, port, workers) -> None:
    """Serve the HTTP service: the ingestion API (/v1), the stores' webhooks, the console, probes (/healthz, /readyz)."""
    import uvicorn

    base.settings()  # refuse bad settings here, in one line, before a server starts
    uvicorn.run("admin.web.serve:app", factory=True, host=host, port=port, workers=workers, log_config=None,
                proxy_headers=True)


def _sandbox_module(name: str):
    """A module of the optional sandbox package, or a clear error on an install without it. Imported when its
    command runs, never at the top: the sandbox needs pyyaml and jsonschema, which production images leave out."""
    try:
        return importlib.import_module(f"sandbox.{name}")
    except ImportError as exc:
        raise click.ClickException("the local Keap sandbox is not installed here: pip install 'keap-orders[sandbox]' "
                                   f"(or run `make`, which installs it) [{exc}]") from exc


COMMANDS = (demo, metrics, sandbox, serve)
