"""What every step shares: its injected dependencies, the business-rejection error, loading the order."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from worker.keap import KeapClient
from worker.ledger import Ledger, OrderState
from worker.messages import Order, OrderInvalid, parse_order


class OrderRejected(Exception):
    """Keap (or our own rules) refuse this order as it is: an operator must fix the cause, then retry.

    The message names the order, the field and what to do; it never contains customer data.
    """


@dataclass
class StepContext:
    keap: KeapClient
    ledger: Ledger
    external_id_label: str = "External Order ID"
    # Custom field labels missing from Keap's order model are created as TEXT fields when True.
    create_missing_custom_fields: bool = True


def load(ctx: StepContext, external_id: str) -> tuple[OrderState, Order]:
    state = ctx.ledger.get(external_id)
    if state is None or state.message is None:
        raise OrderRejected(
            f"order {external_id}: not in the ledger; send it with enqueue_order (or `keap-orders backfill`) first"
        )
    try:
        # A stored message was valid when it was queued; its start dates may have passed since, which is
        # Keap's to judge (it answers 400), so the past-date check is off here.
        order = parse_order(state.message, today=date.min)
    except OrderInvalid as exc:
        raise OrderRejected(str(exc)) from exc
    return state, order


def keap_order_id(state: OrderState) -> str:
    """The Keap order a later step works on; it exists only once create_order has run."""
    if "order_id" not in state.results:
        raise OrderRejected(
            f"order {state.external_id}: has no Keap order yet; run the whole order "
            f"(`keap-orders retry {state.external_id}`)"
        )
    return state.results["order_id"]
