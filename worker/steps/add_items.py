"""Step 2: add the order's items that are not on the Keap order yet (none for a freshly created order)."""
from __future__ import annotations

from worker.contract import Order
from worker.keap import money
from worker.ledger import OrderState
from worker.steps import payloads, resolve
from worker.steps.base import Results, StepContext, keap_order_id, load, write_once


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    todo = [i for i in range(len(order.items)) if f"item:{i}" not in state.results]
    if not todo:
        return
    order_id = keap_order_id(state)
    product_ids = resolve.product_ids(ctx, order)
    for i in todo:
        body = payloads.item_body(order.items[i], product_ids.get(order.items[i].sku or ""))
        write_once(ctx, state, f"item:{i}",
                   find=lambda i=i: _landed(ctx, order_id, order, state, i, product_ids),
                   write=lambda i=i, body=body: {f"item:{i}": str(ctx.keap.orders.add_item(order_id, body)
                                                                 .get("id", "added"))})
    # Keap's total moved with the new lines; record_payment compares it with the order's before paying.
    ctx.ledger.record(external_id, {"keap_total": str(money(ctx.keap.orders.get(order_id)["total"]))})


def _landed(ctx: StepContext, order_id: str, order: Order, state: OrderState, i: int,
            product_ids: dict[str, str]) -> Results | None:
    """Did an earlier, unanswered add of item i reach Keap? More such lines on the order than we recorded = yes."""
    key = payloads.item_key(order.items[i], product_ids.get(order.items[i].sku or ""))
    on_keap = sum(payloads.keap_item_key(line) == key for line in ctx.keap.orders.get(order_id).get("order_items") or [])
    recorded = sum(
        1 for j, other in enumerate(order.items)
        if j != i and f"item:{j}" in state.results and payloads.item_key(other, product_ids.get(other.sku or "")) == key
    )
    return {f"item:{i}": "reconciled"} if on_keap > recorded else None
