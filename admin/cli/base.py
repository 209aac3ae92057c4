"""What every command shares: the settings of one invocation, the ledger, producer and Keap context built from
them (on a Redis client that gives up within seconds), and THE table of exit codes."""
from __future__ import annotations

import click
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from producers.enqueue import Producer
from worker import context
from worker.app import configure
from worker.ledger import Ledger
from worker.settings import Settings
from worker.steps.base import StepContext

# The exit codes of every command: README.md "Exit codes" and `keap-orders --help` show this table, and
# tests/pipeline/test_cli_errors.py checks both against it.
EXIT_OK = 0  # done
EXIT_ERROR = 1  # an error with its reason on stderr: an unknown order, a refused retry, a file that cannot be used
EXIT_USAGE = 2  # click's usage errors: an unknown option, a bad value, a FILE that does not exist
EXIT_INVALID_ROWS = 3  # some rows of the file are invalid (each is listed); the valid ones are fine
EXIT_FAILED = 4  # some orders failed or did not finish (`keap-orders failed` lists them); wins over 3
EXIT_REDIS = 5  # Redis does not answer at REDIS_URL
EXIT_KEAP = 6  # Keap cannot be used: no credential, the credential refused, or no answer at KEAP_BASE_URL
EXIT_CONFIG = 78  # a worker refuses to start (worker/app.py EX_CONFIG)
EXIT_INTERRUPTED = 130  # interrupted (Ctrl-C); run the same command again to resume

EXIT_CODES = {
    EXIT_OK: "done (verify: no difference; doctor: every check passed)",
    EXIT_ERROR: "an error, said on stderr: an unknown order, a refused retry or cancel, a file that cannot be used",
    EXIT_USAGE: "a usage error: an unknown option, a bad value, a FILE that does not exist",
    EXIT_INVALID_ROWS: "some rows or orders of the file have problems (each listed by line); the valid ones go in",
    EXIT_FAILED: "backfill --wait, retry --wait: some orders failed or did not finish; wins over 3",
    EXIT_REDIS: "Redis does not answer at REDIS_URL",
    EXIT_KEAP: "Keap cannot be used: no credential, the credential refused, or no answer at KEAP_BASE_URL",
    EXIT_CONFIG: "a worker (celery -A worker.app worker) refuses to start; the reason is on stderr",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); run the same command again to resume",
}

# A command gives up on a Redis that does not answer within seconds (a worker waits longer: worker/context.py).
REDIS_CONNECT_TIMEOUT, REDIS_TIMEOUT = 2.0, 10.0


def settings() -> Settings:
    """The settings of this command (environment and .env), read once, and the Celery app pointed at them."""
    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = Settings()
        configure(root.obj)
        # Publishing a message gives up as soon as Redis is found dead (kombu retries for ~6 s by default).
        from worker.app import app
        app.conf.update(broker_connection_timeout=REDIS_CONNECT_TIMEOUT, broker_connection_max_retries=1,
                        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5,
                                                   "interval_max": 0.5})
    return root.obj


def redis_client() -> redis.Redis:
    """One Redis client per command, checked once: a dead Redis is one error (exit 5) within seconds."""
    root = click.get_current_context().find_root()
    client = root.meta.get("keap-orders.redis")
    if client is None:
        client = redis.Redis.from_url(settings().redis_url, socket_timeout=REDIS_TIMEOUT,
                                      socket_connect_timeout=REDIS_CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 1),
                                      retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        client.ping()
        root.meta["keap-orders.redis"] = client
    return client


def ledger() -> Ledger:
    return context.ledger(settings(), redis_client())


def producer() -> Producer:
    return Producer(settings(), ledger())


def keap_context() -> StepContext:
    """What the read-only checks use: the Keap client on the shared throttle (NoCredential: exit 6)."""
    return context.build_context(settings(), client=redis_client())


def checked_keap_context() -> StepContext:
    """keap_context(), after one call that proves Keap answers and takes the credential (as doctor does): a wrong
    key or an unreachable Keap is one error (exit 6) before any row is read."""
    ctx = keap_context()
    ctx.keap.orders.get_model()
    return ctx
