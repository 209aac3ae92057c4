"""The `keap-orders` command: one click group, its commands by topic: imports (backfill, doctor, quota, verify,
schema), orders (status, stuck, failed, retry, export, cancel, gc), service (sandbox, demo, metrics), jobs (jobs,
feeder, console-user) and auth."""
from __future__ import annotations

import os
import sys
from importlib import metadata

import click

from admin.cli import auth, base, imports, jobs, orders, service
from admin.cli.errors import explain


class Commands(click.Group):
    """The group, and THE error boundary: a failure an operator can fix (Redis, Keap, the credential, a file) is
    one or two lines and an exit code of `base.EXIT_CODES`, never a traceback (KEAP_ORDERS_DEBUG=1 shows it)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, SystemExit):
            raise
        except (KeyboardInterrupt, click.exceptions.Abort):  # Ctrl-C, also at a prompt
            click.echo("\ninterrupted", err=True)
            sys.exit(base.EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - the boundary: every error becomes words and an exit code
            if os.environ.get("KEAP_ORDERS_DEBUG"):
                raise
            code, lines = explain(exc)
            for line in lines:
                click.echo(line, err=True)
            sys.exit(code)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click clips each description to the terminal's width; the whole first sentence, wrapped, reads better.
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit=300)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _version() -> str:
    try:
        return metadata.version("keap-orders")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


EPILOG = "\b\nExit codes (the same for every command):\n" + "\n".join(
    f"  {code:>3}  {meaning}" for code, meaning in base.EXIT_CODES.items()) + (
    "\n\n\b\nExamples:\n  keap-orders doctor orders.jsonl\n  keap-orders backfill orders.jsonl --wait\n"
    "  keap-orders status '#1001'\n  keap-orders failed --since 2h --group-by reason")


@click.group(cls=Commands, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(_version(), "--version", prog_name="keap-orders", message="%(prog)s %(version)s")
def main() -> None:
    """Import complete orders into Keap, exactly once, through Celery workers.

    Every command has its own help with an example: keap-orders COMMAND --help."""


for topic in (imports, orders, jobs, service, auth):
    for command in topic.COMMANDS:
        main.add_command(command)
