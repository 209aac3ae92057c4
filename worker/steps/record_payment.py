"""Step 3: record each payment not yet recorded (a manual payment type, or a charge of a stored method)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

from worker.contract import Order, Payment
from worker.keap import KeapOutcomeUnknown, KeapValidationError
from worker.steps import lookups, payloads
from worker.steps.base import (
    NotApplied,
    OrderRejected,
    Results,
    StepContext,
    keap_order_id,
    load,
    write_once,
)

log = logging.getLogger(__name__)

# A payment counts only on a known success (a charge: APPROVED or PAYPAL_PAID; a record: MANUAL_PAID; refunded or
# voided ones were made, so they count too). FAILED/ERROR/DECLINED are failed attempts; anything else is unknown.
_MADE = ("APPROVED", "PAYPAL_PAID", "MANUAL_PAID", "REFUNDED", "VOIDED")
_FAILED = ("FAILED", "ERROR", "DECLINED")


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
                   find=lambda payment=payment, what=what: _find(ctx, order, state.results, order_id, payment, what),
                   write=lambda i=i, payment=payment, what=what: _pay(ctx, order, order_id, i, payment, what))
        log.info("order %s: recorded payment %s", external_id, state.results[what])


def _find(ctx: StepContext, order: Order, results: Results, order_id: str, payment: Payment,
          what: str) -> Results | None:
    """Our payment in Keap's list: marked with our note, or, when the list carries no note, one with this payment's
    amount, time and method that no other payment of the order has recorded (then an operator decides)."""
    external_id, marker = order.external_id, payloads.payment_marker(payment)
    listed = ctx.keap.orders.list_payments(order_id)
    marked = [p for p in listed if marker in (p.get("note") or "")]
    made = [p for p in marked if _status(p) in _MADE]
    if len(made) > 1:
        raise OrderRejected(
            f"order {external_id}: Keap order {order_id} has {len(made)} payments marked {marker}: one payment was "
            f"recorded more than once; remove the extra one in Keap, then run `keap-orders retry {external_id}`"
        )
    if made:
        return {what: _payment_id(made[0])}
    unknown = [p for p in marked if _status(p) not in _FAILED]
    recorded = set(results.values())
    could_be = [p for p in listed if "note" not in p and _payment_id(p) not in recorded
                and _same(p, payment, payloads.payment_body(payment, order)["payment_time"])]
    if could_be and not unknown:
        could_be = _same_method(ctx, order_id, could_be, payment)
    if unknown or could_be:
        ids = ", ".join(_payment_id(p) for p in unknown or could_be)
        why = (f"lists payment(s) {ids} marked {marker} in state {', '.join(_status(p) for p in unknown)}" if unknown
               else f"lists payment(s) {ids} without a note but with this payment's amount, time and method")
        raise OrderRejected(
            f"order {external_id}: Keap order {order_id} {why}; after a lost answer this cannot be told apart from "
            f"this order's payment. Check the order's payments in Keap: if one is this payment and it went through, "
            f"the payment is in Keap (cancel the order here with `keap-orders cancel {external_id}` once the rest "
            f"is checked); if none is, run `keap-orders retry {external_id} --charges-checked`"
        )
    return None


def _status(listed: dict) -> str:
    return str(listed.get("pay_status") or "").upper()


def _payment_id(listed: dict) -> str:
    return str(listed.get("payment_id") or listed.get("id"))


def _same(listed: dict, payment: Payment, sent: str) -> bool:
    """Same amount and, where Keap lists it, the same time (we send payment_time to the second)."""
    try:
        amount = Decimal(str(listed.get("amount")))
    except ArithmeticError:
        return True  # an amount we cannot read may be anything
    try:
        when = datetime.fromisoformat(str(listed.get("pay_time")))
        same_time = when.astimezone(timezone.utc).replace(microsecond=0) == datetime.fromisoformat(sent)
    except (TypeError, ValueError):
        same_time = True  # a time we cannot read may be any time
    return amount == payment.amount and same_time


def _same_method(ctx: StepContext, order_id: str, listed: list[dict], payment: Payment) -> list[dict]:
    """Keep the candidates whose transaction is of this payment's method (a charge or a recorded payment)."""
    method = "CAPTURE" if payment.charge_payment_method_id else "MANUAL"
    methods = {str(t.get("payment_id")): t.get("transaction_method") for t in ctx.keap.transactions.for_order(order_id)}
    return [p for p in listed if methods.get(_payment_id(p)) in (None, method)]


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
    if payment.charge_payment_method_id:
        _confirm_charge(ctx, ext, order_id, i, payment, str(result["id"]), result.get("payment_status_message"))
    return {what: str(result["id"])}


def _confirm_charge(ctx: StepContext, ext: str, order_id: str, i: int, payment: Payment, payment_id: str,
                    answered) -> None:
    """A charge is paid only on a known success: Keap's words for a decline are not documented, so the answer's
    message is not trusted; the order's payment list (one call), else the charge's transaction, must say so."""
    listed = next((p for p in ctx.keap.orders.list_payments(order_id)
                   if payment_id in (str(p.get("payment_id")), str(p.get("id")))), {})
    status = _status(listed)
    if status in _MADE:
        return
    if status not in _FAILED:
        txn = next((t for t in ctx.keap.transactions.for_order(order_id) if str(t.get("payment_id")) == payment_id),
                   {})
        if txn.get("is_successful") is True:
            return
        status = str(txn.get("status") or status or "").upper()
    if status in _FAILED:
        raise NotApplied(
            f"order {ext}: payments[{i}]: Keap declined the charge of stored payment method "
            f"{payment.charge_payment_method_id} ({status}, answered {str(answered or '')[:40]!r}); nothing was paid. "
            f"Update the customer's card in Keap or record the payment another way, then run `keap-orders retry {ext}`"
        )
    # Neither a success nor a failure (PENDING, or not listed yet): as after a lost answer, look again later; the
    # lookups count it only once Keap lists it as paid, and an operator decides if it never is.
    raise KeapOutcomeUnknown(f"Keap order {order_id}: charge {payment_id} is in state {status or 'unknown'}",
                             status=201)
