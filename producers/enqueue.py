"""The API other services call: validate an order, register it in the ledger, send its step chain."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from celery import chain

from worker.app import app
from worker.ledger import Ledger
from worker.messages import Order, parse_order
from worker.settings import get_settings

log = logging.getLogger(__name__)

STEPS = ("create_order", "add_items", "record_payment", "set_custom_fields", "create_subscription")
LANES = ("live", "backfill")
# What enqueue_step may add to a stored order, per step.
_ADDS = {"add_items": "items", "record_payment": "payments", "set_custom_fields": "custom_fields",
         "create_subscription": "subscriptions"}


@dataclass
class Enqueued:
    external_id: str
    status: str  # the order's status after the call
    sent: bool  # False when the order was already queued/running/done and nothing was sent


def default_ledger() -> Ledger:
    s = get_settings()
    return Ledger(redis.Redis.from_url(s.redis_url), s.key_prefix)


def queue_for(lane: str) -> str:
    if lane not in LANES:
        raise ValueError(f"lane {lane!r}: use one of {', '.join(LANES)}")
    s = get_settings()
    return s.live_queue if lane == "live" else s.backfill_queue


def send_chain(external_id: str, lane: str, from_step: str = STEPS[0]) -> None:
    """Send the steps from `from_step` to the end, chained: each runs only after the previous succeeded."""
    if from_step not in STEPS:
        raise ValueError(f"step {from_step!r}: use one of {', '.join(STEPS)}")
    queue = queue_for(lane)
    sigs = [app.signature(f"keap.{step}", args=(external_id,), immutable=True, queue=queue)
            for step in STEPS[STEPS.index(from_step):]]
    chain(*sigs).apply_async() if len(sigs) > 1 else sigs[0].apply_async()


def enqueue_order(order: Order | dict[str, Any], lane: str = "live", *, force: bool = False,
                  ledger: Ledger | None = None) -> Enqueued:
    """Validate and send one order. An order already queued, running or done is not sent again (unless force).

    Raises `worker.messages.OrderInvalid` (naming the order, field and fix) for a bad order.
    """
    order = order if isinstance(order, Order) else parse_order(order)
    ledger = ledger or default_ledger()
    queue_for(lane)
    before = ledger.get(order.external_id)
    registered, previous = ledger.register(order.external_id, order.model_dump(mode="json"), lane, force=force)
    if not registered:
        return Enqueued(order.external_id, previous or "queued", sent=False)
    # A failed order sent again resumes at the step that failed; its earlier results are in the ledger.
    failed_at = before.error_step if before and before.status == "failed" else None
    from_step = failed_at if failed_at in STEPS else STEPS[0]
    _send_or_fail(ledger, order.external_id, lane, from_step)
    return Enqueued(order.external_id, "queued", sent=True)


def enqueue_step(step: str, external_id: str, lane: str = "live", *, ledger: Ledger | None = None,
                 **additions: Any) -> Enqueued:
    """Send one step for an order that exists, optionally adding what it should write first.

    E.g. `enqueue_step("record_payment", "shop-1001", payments=[{...}])` records one more payment on the order.
    Additions are appended to the stored order (payments with a key already there are not added twice) and
    the whole order is validated again.
    """
    if step not in STEPS:
        raise ValueError(f"step {step!r}: use one of {', '.join(STEPS)}")
    ledger = ledger or default_ledger()
    state = ledger.get(external_id)
    if state is None or state.message is None:
        raise LookupError(f"order {external_id}: unknown; send the whole order with enqueue_order first")
    allowed = _ADDS.get(step)
    unexpected = set(additions) - {allowed}
    if unexpected:
        raise ValueError(f"step {step}: cannot add {', '.join(sorted(unexpected))}"
                         + (f"; it takes {allowed}=" if allowed else "; it takes no additions"))
    message = dict(state.message)
    if allowed and additions.get(allowed):
        message[allowed] = _merged(message.get(allowed), additions[allowed])
        parse_order(message)  # raises OrderInvalid before anything is stored or sent
        ledger.update_message(external_id, message)
    queue = queue_for(lane)
    app.signature(f"keap.{step}", args=(external_id,), immutable=True, queue=queue).apply_async()
    return Enqueued(external_id, state.status, sent=True)


def retry_order(external_id: str, *, from_step: str | None = None, order: dict[str, Any] | None = None,
                lane: str | None = None, ledger: Ledger | None = None) -> Enqueued:
    """Operator retry: optionally replace the stored message with a fixed one, then resume the chain."""
    ledger = ledger or default_ledger()
    state = ledger.get(external_id)
    if state is None:
        raise LookupError(f"order {external_id}: unknown; nothing to retry")
    message = order if order is not None else state.message
    parsed = parse_order(message)
    if parsed.external_id != external_id:
        raise ValueError(f"order {external_id}: the fixed order has external_id {parsed.external_id!r}")
    lane = lane or state.lane
    ledger.register(external_id, parsed.model_dump(mode="json"), lane, force=True)
    step = from_step or (state.error_step if state.error_step in STEPS else STEPS[0])
    _send_or_fail(ledger, external_id, lane, step)
    return Enqueued(external_id, "queued", sent=True)


def _send_or_fail(ledger: Ledger, external_id: str, lane: str, from_step: str) -> None:
    try:
        send_chain(external_id, lane, from_step)
    except Exception as exc:
        # Registered but not sent would look "queued" forever; say what happened instead.
        ledger.fail(external_id, from_step, f"could not send to the queue ({type(exc).__name__}); retry it", "queue")
        raise


def _merged(existing: Any, added: Any) -> Any:
    if isinstance(existing, dict) or isinstance(added, dict):
        return {**(existing or {}), **(added or {})}
    out = list(existing or [])
    keys = {p.get("external_id") for p in out if isinstance(p, dict) and p.get("external_id")}
    out += [a for a in added if not (isinstance(a, dict) and a.get("external_id") and a["external_id"] in keys)]
    return out
