"""The API other services call: validate an order, register it in the ledger, send its step chain."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from worker import context, pipeline
from worker.app import send
from worker.ledger import Ledger, OrderState
from worker.contract import Order, OrderInvalid, Payment, parse_order
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

# What enqueue_step may add to a stored order, per step.
_ADDS = {"add_items": "items", "record_payment": "payments", "set_custom_fields": "custom_fields",
         "create_subscription": "subscriptions"}


class OrderConflict(ValueError):
    """Other content for an external id the ledger already holds: never dropped, never replaced silently. The order
    keeps its first content; the conflict is noted in the ledger (`problems`) for an operator."""

    def __init__(self, external_id: str, status: str, differences: list[str]):
        self.external_id, self.status, self.differences = external_id, status, differences
        super().__init__(f"order {external_id}: other content than the order already {status} (differs in "
                         f"{', '.join(differences[:10])}{', ...' if len(differences) > 10 else ''}); the first content "
                         f"stays: fix it with `keap-orders retry {external_id} --file fixed.json`, or send it under "
                         "another external_id")


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

    def enqueue_order(self, order: Order | dict[str, Any], lane: str = "live", *, force: bool = False,
                      source: str = "enqueue_order", compare: bool = True) -> Enqueued:
        """Validate and send one order. An order already queued, running, waiting or done is not sent again
        (unless force); a cancelled one never is. A failed order resumes at the step that failed.

        Raises `worker.contract.OrderInvalid` (naming the order, field and fix) for a bad order, and `OrderConflict`
        (noted in the ledger with `source`) when the ledger holds other content for its external id (unless force, or
        `compare` is off: a caller that compares itself).
        """
        order = order if isinstance(order, Order) else parse_order(order)
        if compare and not force:
            self.check_same(order, source)
        result = self._register_and_send(order, lane, force=force)
        if not result.sent and compare and not force:
            # Another producer may have registered this id since the comparison: compare with what it stored.
            self.check_same(order, source)
        return result

    def check_same(self, order: Order, source: str) -> None:
        """Raise OrderConflict (and note it) when the ledger holds other content for this order's external id. A
        compacted order (retention dropped its content) cannot be compared: it counts as the same."""
        state = self.ledger.get(order.external_id)
        if state is None or state.message is None:
            return
        found = differences(normal_message(state.message), order.model_dump(mode="json"))
        if found:
            conflict = OrderConflict(order.external_id, state.status, found)
            self.ledger.note_problem(order.external_id, "conflict", str(conflict), source, found)
            raise conflict

    def enqueue_step(self, step: str, external_id: str, lane: str = "live", **additions: Any) -> Enqueued:
        """Send one step for an order that exists, optionally adding what it should write first.

        E.g. `enqueue_step("record_payment", "shop-1001", payments=[{...}])` records one more payment on the
        order. Additions are merged into the stored order atomically (two producers at once both land; a payment
        already there — same external_id, or same content — is not added twice) and the whole order is validated
        again. A step sent on its own never marks the order done, and a failed order stays failed until a retry.
        """
        task_step = pipeline.step(step)
        allowed = _ADDS.get(step)
        unexpected = set(additions) - {allowed}
        if unexpected:
            raise ValueError(f"step {step}: cannot add {', '.join(sorted(unexpected))}"
                             + (f"; it takes {allowed}=" if allowed else "; it takes no additions"))
        pipeline.queue_for(lane, self.settings)

        def merge(state: OrderState) -> dict[str, Any]:
            if state.message is None:
                raise LookupError(f"order {external_id}: its data was removed by retention (done, compacted); send "
                                  "the whole order with enqueue_order(..., force=True) instead")
            if not (allowed and additions.get(allowed)):
                return {}
            message = {**state.message, allowed: _merged(allowed, state.message, additions[allowed])}
            parse_order(message)  # raises OrderInvalid before anything is stored or sent
            return {"message": message}

        state = self.ledger.update(external_id, merge)
        if state.status in ("done", "failed"):
            self.ledger.watch_single(external_id, task_step.name, self.settings.queued_stall_seconds)
        send(self.settings, external_id, lane, task_step.name, None)
        return Enqueued(external_id, state.status, sent=True)

    def retry_order(self, external_id: str, *, from_step: str | None = None, order: dict[str, Any] | None = None,
                    lane: str | None = None, charges_checked: bool = False) -> Enqueued:
        """Operator retry: optionally replace the stored message with a fixed one, then resume the chain at the
        failed step (or `from_step`). `charges_checked`: the operator found in Keap that a stored-card charge
        whose answer was lost did not go through, so it may be sent again."""
        state = self.ledger.get(external_id)
        if state is None:
            raise LookupError(f"order {external_id}: unknown; nothing to retry")
        if state.status == "done" and from_step is None:
            # Every step of a done order is in Keap: running them again would only cost calls.
            return Enqueued(external_id, "done", sent=False)
        if order is None and state.message is None:
            raise ValueError(f"order {external_id}: its data was removed by retention (done, compacted); pass the "
                             "whole order (`--file`): what is already in Keap is not written again")
        parsed = parse_order(order if order is not None else state.message)
        if parsed.external_id != external_id:
            raise ValueError(f"order {external_id}: the fixed order has external_id {parsed.external_id!r}")
        if charges_checked:
            self._may_charge_again(state)
            confirmed = self.ledger.confirm_intents(external_id, "payment:")
            log.warning("order %s: operator confirmed %d unanswered charge(s) did not go through", external_id,
                        len(confirmed))
        return self._register_and_send(parsed, lane or state.lane, force=True, from_step=from_step)

    def _may_charge_again(self, state: OrderState) -> None:
        """`--charges-checked` only for an order failed on a charge whose answer was lost, and only once Keap can no
        longer apply it (SETTLE_SECONDS after it was sent). The step still looks in Keap once more before it
        charges (`write_once`), so a charge that landed meanwhile is recorded, not repeated."""
        ext = state.external_id
        charges = [intent for what, intent in state.intents.items() if what.startswith("payment:")]
        if state.status != "failed" or state.error_step != "record_payment" or not charges:
            raise ValueError(f"order {ext}: --charges-checked is only for an order that failed because the answer to "
                             f"a stored-card charge was lost (this one is {state.status}"
                             f"{'' if charges else ', with no unanswered charge'}); retry it without --charges-checked")
        until = max(intent.at for intent in charges) + self.settings.settle_seconds
        now = self.ledger.now()
        if now < until:
            raise ValueError(f"order {ext}: the charge may still land in Keap for {until - now:.0f} s more "
                             f"(SETTLE_SECONDS after it was sent): use --charges-checked after that, once you have "
                             f"checked the order's payments in Keap")

    def _register_and_send(self, order: Order, lane: str, *, force: bool, from_step: str | None = None) -> Enqueued:
        pipeline.queue_for(lane, self.settings)
        if from_step is not None:
            pipeline.step(from_step)
        ext = order.external_id
        registered, previous, step, ticket = self.ledger.register(
            ext, order.model_dump(mode="json"), lane, first_step=pipeline.FIRST, from_step=from_step, force=force,
            start_within=self.settings.queued_stall_seconds)
        if not registered:
            if previous == "cancelled" and force:
                raise ValueError(f"order {ext}: cancelled; a cancelled order is final and is not sent again")
            return Enqueued(ext, previous or "queued", sent=False)
        try:
            send(self.settings, ext, lane, step, ticket)
        except Exception as exc:
            # Registered but not sent would look "queued" until the keeper re-sends it; say what happened now.
            self.ledger.fail(ext, step=step, kind="queue",
                             error=f"order {ext}: could not send to the queue ({type(exc).__name__}); run "
                                   f"`keap-orders retry {ext}`")
            raise
        return Enqueued(ext, "queued", sent=True)


def enqueue_order(order: Order | dict[str, Any], lane: str = "live", *, force: bool = False) -> Enqueued:
    """`Producer.enqueue_order` with the settings of the environment."""
    return Producer(get_settings()).enqueue_order(order, lane, force=force)


def enqueue_step(step: str, external_id: str, lane: str = "live", **additions: Any) -> Enqueued:
    """`Producer.enqueue_step` with the settings of the environment."""
    return Producer(get_settings()).enqueue_step(step, external_id, lane, **additions)


def retry_order(external_id: str, **options: Any) -> Enqueued:
    """`Producer.retry_order` with the settings of the environment."""
    return Producer(get_settings()).retry_order(external_id, **options)


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """The paths where two order messages differ (`items[1].quantity`, `payments`): names only, never values,
    which may be customer data."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return found
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path or 'order'} ({len(old)} stored, {len(new)} sent)"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [path or "order"]


def normal_message(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as today's contract writes it (one stored by an older version may lack new defaults)."""
    try:
        return parse_order(message, today=date.min).model_dump(mode="json")
    except OrderInvalid:
        return message


def _merged(part: str, message: dict[str, Any], added: Any) -> Any:
    existing = message.get(part)
    if isinstance(existing, dict) or isinstance(added, dict):
        return {**(existing or {}), **(added or {})}
    out = list(existing or [])
    if part != "payments":
        return out + list(added)
    # A payment's identity is its key (external_id, or its content): one already stored is not added again.
    order = parse_order(message, today=date.min)
    known = {p.key.split("#")[0] for p in order.payments}
    for raw in added:
        try:
            payment = Payment.model_validate(raw)
        except ValidationError:
            out.append(raw)  # parse_order of the merged message reports what is wrong with it
            continue
        payment.paid_at = payment.paid_at or order.order_time
        key = payment.external_id or payment.content_key()
        if key not in known:
            out.append(raw)
            known.add(key)
    return out
