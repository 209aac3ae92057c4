"""Reads of Keap that more than one step (and `keap-orders verify`) need: the orders carrying an external id, and
the check of Keap's order total against the order's."""
from __future__ import annotations

from decimal import Decimal

from worker.contract import Order
from worker.keap import money
from worker.ledger import OrderState
from worker.steps.base import OrderRejected, StepContext


def check_total(ctx: StepContext, state: OrderState, order: Order) -> None:
    """Keap computes an order's total itself (its handling of discounts, promo codes and tax on API orders is
    not documented): never go on, and never pay, while Keap's total differs from the order's."""
    recorded = state.results.get("keap_total")
    if recorded is None or Decimal(recorded) == order.total:
        return
    # Read it again: the operator may have corrected the Keap order since the mismatch was found.
    current = money(ctx.keap.orders.get(state.results["order_id"])["total"])
    ctx.ledger.record(state.external_id, {"keap_total": str(current)})
    state.results["keap_total"] = str(current)
    if current != order.total:
        raise OrderRejected(
            f"order {order.external_id}: Keap computed the order total as {current}, the order says {order.total} "
            f"(Keap order {state.results['order_id']}); no payment was recorded. Compare the discounts, promo codes "
            f"and tax lines of the order with the Keap order, correct one of them, then run "
            f"`keap-orders retry {order.external_id}`"
        )


def orders_with_external_id(ctx: StepContext, id_field: dict[str, str], external_id: str) -> list[dict]:
    """The Keap orders whose external-id field holds exactly `external_id`. Keap's text filter ignores case, so
    every candidate's value is compared here."""
    exact = []
    for candidate in ctx.keap.orders.find_by_custom_field(id_field["field_name"], external_id):
        full = candidate if "custom_fields" in candidate else ctx.keap.orders.get(candidate["id"])
        if any(str(cf.get("id")) == str(id_field["id"]) and cf.get("content") == external_id
               for cf in full.get("custom_fields") or []):
            exact.append(full)
    return exact
