"""The audit of an order whose Keap writes were uncertain (a lost answer, a Redis that lost writes), run by the keeper
minutes after the order finished: what a write Keap applied late left behind. A second Keap order for the external id
is deleted when unpaid (Keap refuses to delete an order with transactions) and reported when paid; a payment or a
subscription found twice is reported."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from worker.keap import KeapNotFound, KeapValidationError
from worker.ledger import OrderState
from worker.steps import create_subscription, lookups, record_payment, resolve
from worker.steps.base import OrderRejected, StepContext, load

log = logging.getLogger(__name__)


@dataclass
class Findings:
    deleted: list[str] = field(default_factory=list)  # Keap ids of unpaid duplicate orders deleted
    reports: list[str] = field(default_factory=list)  # what an operator must look at

    @property
    def result(self) -> str:
        parts = ([f"deleted Keap order(s) {', '.join(self.deleted)}"] if self.deleted else []) + (
            ["reported"] if self.reports else [])
        return "; ".join(parts) or "clean"


def audit_order(ctx: StepContext, external_id: str, writes: list[str]) -> Findings:
    """Look in Keap for what the uncertain `writes` (e.g. order_id, payment:<key>, subscription:0) may have left twice.
    Raises KeapError when Keap cannot answer now (the keeper tries again later)."""
    found = Findings()
    try:
        state, order = load(ctx, external_id)
    except OrderRejected:
        return found  # compacted or gone: nothing left to compare with
    if "order_id" in writes:
        _orders(ctx, state, order, found)
    order_id = state.results.get("order_id")
    for payment in order.payments:
        what = f"payment:{payment.key}"
        if what in writes and order_id:
            _reported(found, lambda: record_payment._find(ctx, external_id, order_id, payment, what))
    for i in range(len(order.subscriptions)):
        if f"subscription:{i}" in writes and state.results.get("contact_id"):
            label = ctx.external_id_label
            _reported(found, lambda i=i: create_subscription._find(
                ctx, order, i, state.results["contact_id"], resolve.plan_id(ctx, order, i),
                resolve.custom_fields(ctx, order, "subscriptions", [label])[label]))
    return found


def _orders(ctx: StepContext, state: OrderState, order, found: Findings) -> None:
    ext, kept = state.external_id, state.results.get("order_id")
    id_field = resolve.order_fields(ctx, order, [ctx.external_id_label])[ctx.external_id_label]
    for extra in lookups.orders_with_external_id(ctx, id_field, ext):
        extra_id = str(extra["id"])
        if extra_id == kept:
            continue
        owner = str((extra.get("contact") or {}).get("id") or extra.get("contact_id") or "")
        ours = bool(kept) and owner == state.results.get("contact_id")
        deleted = _delete(ctx, extra_id) if ours and not ctx.keap.orders.list_payments(extra_id) else False
        if deleted is None:
            continue  # gone already (another keeper, an operator)
        if deleted:
            log.warning("order %s: audit deleted Keap order %s, an unpaid second order for this external id "
                        "(Keap order %s is the one recorded)", ext, extra_id, kept)
            found.deleted.append(extra_id)
            continue
        why = "it has payments" if ours else "another contact's" if kept else "the ledger recorded no Keap order"
        found.reports.append(
            f"order {ext}: Keap order {extra_id} carries this external id besides Keap order {kept or '-'} and was "
            f"not deleted ({why}): a write Keap applied late; refund or merge it in Keap")


def _delete(ctx: StepContext, order_id: str) -> bool | None:
    """True when deleted, None when gone already, False when Keap refuses (it has transactions)."""
    try:
        ctx.keap.orders.delete(order_id)
    except KeapNotFound:
        return None
    except KeapValidationError:
        return False  # it has transactions after all: reported
    return True


def _reported(found: Findings, lookup) -> None:
    try:
        lookup()
    except OrderRejected as exc:  # the lookup found the write twice: its message says what to do
        found.reports.append(str(exc))
