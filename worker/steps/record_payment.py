"""Step 3: record each payment not yet recorded (a manual payment type, or a charge of a stored method)."""
from __future__ import annotations

import logging

from worker.contract import Order, Payment
from worker.keap import KeapValidationError
from worker.steps import lookups, payloads
from worker.steps.base import (
    OrderRejected,
    Results,
    StepContext,
    keap_order_id,
    load,
    write_once,
)

log = logging.getLogger(__name__)

# Keap's list of payments keeps failed attempts (pay_status); they are not payments. (A refunded or voided
# payment was made, so it still counts.)
_NOT_PAID = ("FAILED", "ERROR", "DECLINED")
_DECLINED_WORDS = ("DECLIN", "FAIL", "ERROR", "REJECT", "VOID")


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    todo = [(i, p) for i, p in enumerate(order.payments) if f"payment:{p.key}" not in state.results]
    if not todo:
        return
    order_id = keap_order_id(state)
    lookups.check_total(ctx, state, order)
    for i, payment in todo:
        what = f"payment:{payment.key}"
        unproven = None
        if payment.charge_payment_method_id:
            # A card must never be charged twice: when no lookup can prove the first charge failed, a person decides.
            unproven = (
                f"order {external_id}: payments[{i}]: the answer to charging stored payment method "
                f"{payment.charge_payment_method_id} was lost and Keap lists no approved payment for it after "
                f"{ctx.settle_checks} lookups; check the order's payments in Keap (Keap order {order_id}). If the "
                f"card was not charged, run `keap-orders retry {external_id} --charges-checked`; if it was, record "
                f"nothing and cancel the order here"
            )
        write_once(ctx, state, what, unproven=unproven,
                   find=lambda payment=payment, what=what: _find(ctx, external_id, order_id, payment, what),
                   write=lambda i=i, payment=payment, what=what: _pay(ctx, order, order_id, i, payment, what))
        log.info("order %s: recorded payment %s", external_id, state.results[what])


def _find(ctx: StepContext, external_id: str, order_id: str, payment: Payment, what: str) -> Results | None:
    marker = payloads.payment_marker(payment)
    paid = [p for p in ctx.keap.orders.list_payments(order_id)
            if marker in (p.get("note") or "") and str(p.get("pay_status") or "").upper() not in _NOT_PAID]
    if len(paid) > 1:
        raise OrderRejected(
            f"order {external_id}: Keap order {order_id} has {len(paid)} payments marked {marker}: one payment was "
            f"recorded more than once; remove the extra one in Keap, then run `keap-orders retry {external_id}`"
        )
    return {what: str(paid[0].get("payment_id") or paid[0].get("id"))} if paid else None


def _pay(ctx: StepContext, order: Order, order_id: str, i: int, payment: Payment, what: str) -> Results:
    ext = order.external_id
    try:
        result = ctx.keap.orders.add_payment(order_id, payloads.payment_body(payment, order))
    except KeapValidationError as exc:
        raise OrderRejected(
            f"order {ext}: payments[{i}]: Keap refused the payment ({exc.message}); check that the method is a "
            f"manual payment type of the Keap account (Ecommerce settings > Orders) or that the stored payment "
            f"method belongs to the customer and the amount is within the balance, fix the order, then run "
            f"`keap-orders retry {ext}`"
        ) from exc
    status = str(result.get("payment_status_message") or "").upper()
    if payment.charge_payment_method_id and any(word in status for word in _DECLINED_WORDS):
        raise OrderRejected(
            f"order {ext}: payments[{i}]: Keap declined the charge of stored payment method "
            f"{payment.charge_payment_method_id} ({status}); nothing was paid. Update the customer's card in Keap "
            f"or record the payment another way, then run `keap-orders retry {ext}`"
        )
    return {what: str(result["id"])}
