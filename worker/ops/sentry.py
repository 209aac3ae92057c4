"""Sentry, safe by default: initialised in the worker's start-up signal with no local variables, and every event,
transaction and breadcrumb scrubbed (worker/scrub.py) before it leaves the process.

Business refusals (unknown SKU, payment type, total mismatch, a declined card, Keap refusing a request, an outage
that outlasted the retries) are operator events, not bugs: `Refusals.report` sends at most one *warning* per reason
per `SENTRY_REFUSAL_INTERVAL_SECONDS` for the whole fleet (a Redis key per reason), grouped by a fingerprint of the
error kind, the step and the reason with the order id and values stripped, and carrying how many refusals it stands
for. A backfill with a bad SKU is one Sentry issue with a count, not an error per order. Bugs stay errors.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis

from worker import lua, scrub
from worker.settings import Settings

log = logging.getLogger(__name__)

# Parts of an event made by the SDK about the runtime, not about an order: scrubbed as text, not filtered by key
# (their "name" is the OS's or the runtime's).
_SDK_CONTEXTS = {"runtime", "os", "device", "app", "trace", "cloud_resource", "culture"}


def init(settings: Settings) -> bool:
    """Start Sentry when SENTRY_DSN is set; True if it was."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    # send_default_pii=False keeps request bodies, users and IPs out; local variables are off because a frame of a
    # step holds the order (names, emails, addresses) and a frame of a token call holds the token. What remains
    # (messages, exception values, breadcrumbs, tags, extra, contexts, spans) is scrubbed by the hooks below.
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment or None,
        integrations=[CeleryIntegration(), LoggingIntegration(event_level=logging.ERROR)],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
    )
    return True


def before_send(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Scrub an event or a transaction in place (and return it): every string an order or a secret can reach."""
    event.pop("user", None)
    event.pop("request", None)  # a worker serves no requests; nothing of one belongs in an event
    for name in ("message", "logentry", "extra", "tags", "breadcrumbs", "spans", "transaction"):
        if name in event:
            event[name] = scrub.data(event[name])
    for name in ("exception", "threads"):
        for item in (event.get(name) or {}).get("values") or []:
            if isinstance(item.get("value"), str):
                item["value"] = scrub.text(item["value"])
            for frame in (item.get("stacktrace") or {}).get("frames") or []:
                frame.pop("vars", None)
    contexts = event.get("contexts") or {}
    for name, context in contexts.items():
        if name in _SDK_CONTEXTS and isinstance(context, dict):
            contexts[name] = {k: scrub.text(v) if isinstance(v, str) else v for k, v in context.items()}
        else:
            contexts[name] = scrub.data(context)
    return event


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    # The query of a Keap call is a search for a customer (filter=email==...): the path says enough.
    data = crumb.get("data")
    if isinstance(data, dict):
        for name in ("http.query", "http.fragment"):
            data.pop(name, None)
    return scrub.data(crumb)


class Refusals:
    """Reports orders that failed for a business reason: one Sentry warning per reason and interval, fleet-wide."""

    def __init__(self, client: redis.Redis, prefix: str, interval_seconds: float):
        self._throttle = client.register_script(lua.load("worker.ops", "refusal_throttle"))
        self.prefix = prefix
        self.interval = max(1, int(interval_seconds))

    def report(self, external_id: str, step: str, kind: str, error: str) -> int:
        """Send (or count) one refusal; returns how many refusals a sent event stood for, 0 when held back."""
        import sentry_sdk

        if not sentry_sdk.get_client().is_active():
            return 0
        why = scrub.reason(error, external_id)
        digest = hashlib.sha256(f"{kind}\0{step}\0{why}".encode()).hexdigest()[:16]
        base = f"{self.prefix}:sentry:refusal:{digest}"
        try:
            count = int(self._throttle(keys=[f"{base}:sent", f"{base}:count"], args=[self.interval]))
        except redis.RedisError:
            return 0  # the order's failure is in the ledger and the log; an alert can be skipped
        if count:
            with sentry_sdk.new_scope() as scope:
                scope.fingerprint = ["keap-orders", "refusal", kind, step, digest]
                scope.set_tag("step", step)
                scope.set_tag("error_kind", kind)
                scope.set_extra("refusals", count)
                scope.set_extra("interval_seconds", self.interval)
                scope.set_extra("example_order", external_id)
                sentry_sdk.capture_message(f"orders refused at {step} ({kind}): {why}", level="warning")
        return count
