"""The `keap-orders` command: one click group, its commands by topic: imports (backfill, doctor, quota, verify,
schema), orders (status, stuck, failed, retry, export, cancel, gc), service (sandbox, demo, metrics), jobs (jobs,
feeder, console-user) and auth."""
from __future__ import annotations

import sys

import click

from admin.cli import auth, imports, jobs, orders, service
from admin.cli.base import EXIT_ERROR
from producers.sources.base import FileRejected


class Commands(click.Group):
    """The group, and the one place where failures a user can fix become one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FileRejected as exc:
            click.echo(f"error: the file cannot be imported: {exc.message}\n  what to do: {exc.hint}", err=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Import complete orders into Keap, exactly once, through Celery workers."""


for topic in (imports, orders, jobs, service, auth):
    for command in topic.COMMANDS:
        main.add_command(command)
