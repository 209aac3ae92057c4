"""A store's webhook delivery, as "this is the order now": a new order is sent; the same again is nothing; payments
the ledger's copy lacks are recorded on the order (`orders/paid` after `orders/create`); a stale delivery (before
the payment the ledger already has) is nothing; any other change is a conflict noted for an operator."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from producers.enqueue import OrderConflict, Producer, differences
from producers.sources.base import Format, ReadOptions, Record, SourceRow
from producers.sources.base import _row as source_row_of
from worker.contract import Order
from worker.ledger import OrderState


@dataclass(frozen=True)
class Outcome:
    external_id: str | None
    result: str  # queued, unchanged, payment added, conflict, invalid
    status: str | None = None
    detail: str = ""


def read_delivery(data: Any, fmt: Format, options: ReadOptions) -> SourceRow:
    """One store order through the same mapping, email policy and validation as a file's row."""
    return source_row_of(Record(1, data), fmt, options, fmt.external_id(data, options) if isinstance(data, dict)
                         else None, None)


def apply(producer: Producer, row: SourceRow, source: str, ref: str) -> Outcome:
    """Register or update the order of one delivery; an invalid one is noted (under its external id, else `ref`)."""
    if row.order is None:
        producer.ledger.note_problem(row.external_id or ref, "invalid", str(row.error), source)
        return Outcome(row.external_id, "invalid", detail=str(row.error))
    order = row.order
    state = producer.ledger.get(order.external_id)
    if state is None:
        sent = producer.enqueue_order(order, "live", compare=False)
        if sent.sent:
            return Outcome(order.external_id, "queued", "queued")
        state = producer.ledger.get(order.external_id)  # another delivery registered it meanwhile: compare
    if state is None or state.message is None:  # compacted by retention long after it was done
        return Outcome(order.external_id, "unchanged", state.status if state else None)
    return _update(producer, order, state, source)


def _update(producer: Producer, order: Order, state: OrderState, source: str) -> Outcome:
    stored, new = state.message, order.model_dump(mode="json")
    keys = {_payment_key(p) for p in stored.get("payments") or []}
    added = [p for p in new.get("payments") or [] if _payment_key(p) not in keys]
    rest = differences({k: v for k, v in stored.items() if k not in ("payments", "custom_fields")},
                       {k: v for k, v in new.items() if k not in ("payments", "custom_fields")})
    if rest:
        conflict = OrderConflict(order.external_id, state.status, rest)
        producer.ledger.note_problem(order.external_id, "conflict", str(conflict), source, rest)
        return Outcome(order.external_id, "conflict", state.status, str(conflict))
    if not added:
        # The same order, or a delivery from before what the ledger holds (orders/create after orders/paid).
        return Outcome(order.external_id, "unchanged", state.status)
    # One step only: two steps sent on their own for one order race for its lease. So the store's status field
    # keeps the value of the first delivery (e.g. "pending"); the payment is what counts.
    producer.enqueue_step("record_payment", order.external_id, "live", payments=added)
    return Outcome(order.external_id, "payment added", state.status)


def _payment_key(payment: dict) -> Any:
    return payment.get("external_id") or (payment.get("amount"), payment.get("method"), payment.get("paid_at"))
