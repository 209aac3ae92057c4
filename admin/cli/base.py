"""What every command shares: the settings of one invocation, the ledger, producer and Keap context built from
them, and the exit codes."""
from __future__ import annotations

import click

from producers.enqueue import Producer
from worker import context
from worker.app import configure
from worker.ledger import Ledger
from worker.settings import Settings
from worker.steps.base import StepContext

# Exit codes of `backfill` (README, "Using it"); click itself exits 2 on a usage error.
EXIT_OK, EXIT_ERROR, EXIT_INVALID_ROWS, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


def settings() -> Settings:
    """The settings of this command (environment and .env), read once, and the Celery app pointed at them."""
    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = Settings()
        configure(root.obj)
    return root.obj


def ledger() -> Ledger:
    return context.ledger(settings())


def producer() -> Producer:
    return Producer(settings(), ledger())


def keap_context() -> StepContext:
    try:
        return context.build_context(settings())
    except context.NoCredential as exc:
        raise click.ClickException(str(exc)) from exc
