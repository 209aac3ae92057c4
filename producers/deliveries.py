"""A store's webhook delivery, as "this is the order now": a new order is sent; the same again is nothing; payments
the ledger's copy lacks are recorded on the order (`orders/paid` after `orders/create`); a stale delivery (before
the payment the ledger already has) is nothing; any other change is a conflict noted for an operator."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from producers.enqueue import OrderConflict, Producer, differences, normal_message
from producers.sources.base import Format, ReadOptions, Record, SourceRow
from producers.sources.base import _row as source_row_of
from worker.contract import FieldError, Order, OrderInvalid
from worker.ledger import OrderState


@dataclass(frozen=True)
class Outcome:
    external_id: str | None
    result: str  # queued, unchanged, payment added, conflict, invalid
    status: str | None = None
    detail: str = ""


def read_delivery(data: Any, fmt: Format, options: ReadOptions) -> SourceRow:
    """One store order through the same mapping, email policy and validation as a file's row. A body whose shape no
    store sends (a mapping that trips over it) is an invalid order too, never an error of the service."""
    try:
        external_id = fmt.external_id(data, options) if isinstance(data, dict) else None
        return source_row_of(Record(1, data), fmt, options, external_id, None)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        return SourceRow(1, None, OrderInvalid(None, [FieldError("", f"not a {fmt.description} ({type(exc).__name__})",
                                                                 "send the store's order resource unchanged")]), None)


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
    stored, new = normal_message(state.message), order.model_dump(mode="json")
    rest = differences({k: v for k, v in stored.items() if k not in ("payments", "custom_fields")},
                       {k: v for k, v in new.items() if k not in ("payments", "custom_fields")})
    if rest:
        conflict = OrderConflict(order.external_id, state.status, rest)
        producer.ledger.note_problem(order.external_id, "conflict", str(conflict), source, rest)
        return Outcome(order.external_id, "conflict", state.status, str(conflict))
    payment = _more_paid(stored.get("payments") or [], new.get("payments") or [])
    if payment is None:
        # The same order, or a delivery from before what the ledger holds (orders/create after orders/paid).
        return Outcome(order.external_id, "unchanged", state.status)
    # One step only: two steps sent on their own for one order race for its lease. So the store's status field
    # keeps the value of the first delivery (e.g. "pending"); the payment is what counts.
    try:
        producer.enqueue_step("record_payment", order.external_id, "live", payments=[payment])
    except (OrderInvalid, ValueError, LookupError) as exc:  # e.g. paid more than the order's total
        producer.ledger.note_problem(order.external_id, "invalid", str(exc), source)
        return Outcome(order.external_id, "invalid", state.status, str(exc))
    return Outcome(order.external_id, "payment added", state.status)


def _more_paid(stored: list[dict], new: list[dict]) -> dict | None:
    """What a store delivery says was paid beyond the ledger's payments: stores send what is paid in all (one
    payment of the paid total), so the difference is the new payment; the same total again is nothing."""
    extra = _total(new) - _total(stored)
    if extra <= 0 or not new:
        return None
    if not stored:
        return new[-1]
    return {**new[-1], "amount": str(extra), "external_id": None,
            "notes": f"{new[-1].get('notes') or 'store'}: the rest of the payment"[:200]}


def _total(payments: list[dict]) -> Decimal:
    return sum((Decimal(str(p.get("amount") or 0)) for p in payments), Decimal("0.00"))
