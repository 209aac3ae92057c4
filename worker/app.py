"""The Celery app: two lanes (live before backfill), late acks, a visibility timeout, Sentry."""
from __future__ import annotations

import logging

from celery import Celery
from kombu import Exchange, Queue

from worker.settings import get_settings

settings = get_settings()

app = Celery("keap_orders", broker=settings.redis_url, include=["worker.tasks"])

def _lane(name: str) -> Queue:
    # Each lane gets its own exchange: queues left on Celery's default exchange share one routing key, and the
    # Redis transport then copies every message into both queues — each task would run twice.
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


app.conf.update(
    task_queues=(_lane(settings.live_queue), _lane(settings.backfill_queue)),
    task_default_queue=settings.live_queue,
    # A step is acknowledged only once it has finished, so a crashed worker's step is delivered again
    # (every step is idempotent by design); the prefetch of one keeps a slow backfill from hoarding work.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout_seconds,
        # With -Q keap.live,keap.backfill the worker always takes live work first.
        "queue_order_strategy": "priority",
    },
    worker_hijack_root_logger=False,
)


def _init_sentry() -> None:
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


_init_sentry()
# urllib3's DEBUG lines carry full URLs, and a Keap filter in a URL can hold a customer's email.
logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger("urllib3").level))
