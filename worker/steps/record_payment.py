"""Step 3: record each payment not yet recorded (a manual payment type, or a charge of a stored method)."""
from __future__ import annotations

import logging

from worker.keap import KeapValidationError
from worker.steps import payloads
from worker.steps.base import OrderRejected, StepContext, keap_order_id, load

log = logging.getLogger(__name__)


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    todo = [(i, p) for i, p in enumerate(order.payments) if f"payment:{p.key}" not in state.results]
    if not todo:
        return
    order_id = keap_order_id(state)
    for i, payment in todo:
        what = f"payment:{payment.key}"
        if what in state.intents:
            # The earlier attempt may have been applied; Keap lists payments with their note, which carries
            # our marker, so look before paying again.
            marker = payloads.payment_marker(payment)
            match = next((p for p in ctx.keap.orders.list_payments(order_id) if marker in (p.get("note") or "")), None)
            if match:
                ctx.ledger.record(external_id, {what: str(match.get("payment_id") or match.get("id"))})
                continue
        ctx.ledger.mark_intent(external_id, what)
        try:
            result = ctx.keap.orders.add_payment(order_id, payloads.payment_body(payment, order))
        except KeapValidationError as exc:
            raise OrderRejected(
                f"order {external_id}: payments[{i}]: Keap refused the payment ({exc.message}); check that the "
                f"method is a manual payment type of the Keap account (Ecommerce settings > Orders) or that the "
                f"stored payment method belongs to the customer and the amount is within the balance, fix the "
                f"order, then run `keap-orders retry {external_id}`"
            ) from exc
        ctx.ledger.record(external_id, {what: str(result["id"])})
        log.info("order %s: recorded payment %s", external_id, result["id"])
