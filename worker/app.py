"""The Celery app: two lanes (live before backfill), late acks, a visibility timeout; set-up in worker signals.

Nothing is read or initialised at import: the configuration is built from the settings when Celery first needs
it (or by `configure(settings)`), and Sentry starts in the worker's `celeryd_init` signal.
"""
from __future__ import annotations

import logging

from celery import Celery, signals
from kombu import Exchange, Queue

from worker import context
from worker.settings import Settings, get_settings

app = Celery("keap_orders", include=["worker.tasks"])


def _lane(name: str) -> Queue:
    # Each lane gets its own exchange: queues left on Celery's default exchange share one routing key, and the
    # Redis transport then copies every message into both queues — each task would run twice.
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.redis_url,
        "task_queues": (_lane(settings.live_queue), _lane(settings.backfill_queue)),
        "task_default_queue": settings.live_queue,
        # A step is acknowledged only once it has finished, so a crashed worker's step is delivered again
        # (every step is idempotent by design); the prefetch of one keeps a slow backfill from hoarding work.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_seconds,
            # With -Q keap.live,keap.backfill the worker always takes live work first.
            "queue_order_strategy": "priority",
        },
        "worker_hijack_root_logger": False,
    }


def configure(settings: Settings) -> None:
    """Point the app at these settings (a producer or test with its own settings; the worker uses the defaults)."""
    app.conf.update(celery_config(settings))


app.add_defaults(lambda: celery_config(get_settings()))


@signals.celeryd_init.connect
def _init_worker(**_) -> None:
    settings = get_settings()
    _init_sentry(settings)
    # urllib3's DEBUG lines carry full URLs, and a Keap filter in a URL can hold a customer's email.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger("urllib3").level))


@signals.worker_process_init.connect
def _after_fork(**_) -> None:
    context.install(None)


def _init_sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    # send_default_pii=False keeps request bodies, emails and addresses out of events.
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        integrations=[CeleryIntegration(), LoggingIntegration(event_level=logging.ERROR)],
        send_default_pii=False,
        max_request_body_size="never",
    )
