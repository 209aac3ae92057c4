"""The API other services call: validate an order, register it in the ledger, send its step chain."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import chain

from worker import context, pipeline
from worker.app import app
from worker.ledger import Ledger
from worker.messages import Order, parse_order
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

# What enqueue_step may add to a stored order, per step.
_ADDS = {"add_items": "items", "record_payment": "payments", "set_custom_fields": "custom_fields",
         "create_subscription": "subscriptions"}


@dataclass
class Enqueued:
    external_id: str
    status: str  # the order's status after the call
    sent: bool  # False when the order was already queued/running/done and nothing was sent


class Producer:
    """Sends orders and steps for one configuration (settings and ledger); the functions below use the defaults."""

    def __init__(self, settings: Settings, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self.ledger = ledger or context.ledger(settings)

    def send_chain(self, external_id: str, lane: str, from_step: str = pipeline.FIRST) -> None:
        """Send the steps from `from_step` to the end, chained: each runs only after the previous succeeded."""
        queue = pipeline.queue_for(lane, self.settings)
        sigs = [app.signature(step.task, args=(external_id,), immutable=True, queue=queue)
                for step in pipeline.steps_from(from_step)]
        chain(*sigs).apply_async() if len(sigs) > 1 else sigs[0].apply_async()

    def enqueue_order(self, order: Order | dict[str, Any], lane: str = "live", *, force: bool = False) -> Enqueued:
        """Validate and send one order. An order already queued, running or done is not sent again (unless force).

        Raises `worker.messages.OrderInvalid` (naming the order, field and fix) for a bad order.
        """
        order = order if isinstance(order, Order) else parse_order(order)
        pipeline.queue_for(lane, self.settings)
        before = self.ledger.get(order.external_id)
        registered, previous = self.ledger.register(order.external_id, order.model_dump(mode="json"), lane,
                                                    force=force)
        if not registered:
            return Enqueued(order.external_id, previous or "queued", sent=False)
        # A failed order sent again resumes at the step that failed; its earlier results are in the ledger.
        failed_at = before.error_step if before and before.status == "failed" else None
        self._send_or_fail(order.external_id, lane, failed_at if failed_at in pipeline.STEP_NAMES else pipeline.FIRST)
        return Enqueued(order.external_id, "queued", sent=True)

    def enqueue_step(self, step: str, external_id: str, lane: str = "live", **additions: Any) -> Enqueued:
        """Send one step for an order that exists, optionally adding what it should write first.

        E.g. `enqueue_step("record_payment", "shop-1001", payments=[{...}])` records one more payment on the
        order. Additions are appended to the stored order (payments with a key already there are not added
        twice) and the whole order is validated again.
        """
        task = pipeline.step(step).task
        state = self.ledger.get(external_id)
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
            self.ledger.update_message(external_id, message)
        queue = pipeline.queue_for(lane, self.settings)
        app.signature(task, args=(external_id,), immutable=True, queue=queue).apply_async()
        return Enqueued(external_id, state.status, sent=True)

    def retry_order(self, external_id: str, *, from_step: str | None = None, order: dict[str, Any] | None = None,
                    lane: str | None = None) -> Enqueued:
        """Operator retry: optionally replace the stored message with a fixed one, then resume the chain."""
        state = self.ledger.get(external_id)
        if state is None:
            raise LookupError(f"order {external_id}: unknown; nothing to retry")
        message = order if order is not None else state.message
        parsed = parse_order(message)
        if parsed.external_id != external_id:
            raise ValueError(f"order {external_id}: the fixed order has external_id {parsed.external_id!r}")
        lane = lane or state.lane
        self.ledger.register(external_id, parsed.model_dump(mode="json"), lane, force=True)
        step = from_step or (state.error_step if state.error_step in pipeline.STEP_NAMES else pipeline.FIRST)
        self._send_or_fail(external_id, lane, step)
        return Enqueued(external_id, "queued", sent=True)

    def _send_or_fail(self, external_id: str, lane: str, from_step: str) -> None:
        try:
            self.send_chain(external_id, lane, from_step)
        except Exception as exc:
            # Registered but not sent would look "queued" forever; say what happened instead.
            self.ledger.fail(external_id, from_step, f"could not send to the queue ({type(exc).__name__}); retry it",
                             "queue")
            raise


def enqueue_order(order: Order | dict[str, Any], lane: str = "live", *, force: bool = False) -> Enqueued:
    """`Producer.enqueue_order` with the settings of the environment."""
    return Producer(get_settings()).enqueue_order(order, lane, force=force)


def enqueue_step(step: str, external_id: str, lane: str = "live", **additions: Any) -> Enqueued:
    """`Producer.enqueue_step` with the settings of the environment."""
    return Producer(get_settings()).enqueue_step(step, external_id, lane, **additions)


def retry_order(external_id: str, **options: Any) -> Enqueued:
    """`Producer.retry_order` with the settings of the environment."""
    return Producer(get_settings()).retry_order(external_id, **options)


def _merged(existing: Any, added: Any) -> Any:
    if isinstance(existing, dict) or isinstance(added, dict):
        return {**(existing or {}), **(added or {})}
    out = list(existing or [])
    keys = {p.get("external_id") for p in out if isinstance(p, dict) and p.get("external_id")}
    out += [a for a in added if not (isinstance(a, dict) and a.get("external_id") and a["external_id"] in keys)]
    return out
