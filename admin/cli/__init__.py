"""The `keap-orders` command: one click group, its commands by topic: imports (backfill, doctor, quota, verify,
schema), orders (status, stuck, failed, retry, export, cancel, gc), service (sandbox, demo, metrics) and auth."""
from __future__ import annotations

import click

from admin.cli import auth, imports, orders, service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Import complete orders into Keap, exactly once, through Celery workers."""


for topic in (imports, orders, service, auth):
    for command in topic.COMMANDS:
        main.add_command(command)
