"""Step 2: add the order's items that are not on the Keap order yet (none for a freshly created order)."""
from __future__ import annotations

from worker.ledger import OrderState
from worker.messages import Order
from worker.steps import payloads, resolve
from worker.steps.base import StepContext, keap_order_id, load


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    todo = [i for i in range(len(order.items)) if f"item:{i}" not in state.results]
    if not todo:
        return
    order_id = keap_order_id(state)
    product_ids = resolve.product_ids(ctx, order)
    for i in todo:
        item = order.items[i]
        product_id = product_ids.get(item.sku or "")
        if f"item:{i}" in state.intents and _landed(ctx, order_id, order, state, i, product_ids):
            ctx.ledger.record(external_id, {f"item:{i}": "reconciled"})
            state.results[f"item:{i}"] = "reconciled"
            continue
        ctx.ledger.mark_intent(external_id, f"item:{i}")
        added = ctx.keap.orders.add_item(order_id, payloads.item_body(item, product_id))
        ctx.ledger.record(external_id, {f"item:{i}": str(added.get("id", "added"))})
        state.results[f"item:{i}"] = str(added.get("id", "added"))


def _landed(ctx: StepContext, order_id: str, order: Order, state: OrderState, i: int,
            product_ids: dict[str, str]) -> bool:
    """Did an earlier, unanswered add of item i reach Keap? More such lines on the order than we recorded = yes."""
    key = payloads.item_key(order.items[i], product_ids.get(order.items[i].sku or ""))
    on_keap = sum(payloads.keap_item_key(line) == key for line in ctx.keap.orders.get(order_id).get("order_items") or [])
    recorded = sum(
        1 for j, other in enumerate(order.items)
        if j != i and f"item:{j}" in state.results and payloads.item_key(other, product_ids.get(other.sku or "")) == key
    )
    return on_keap > recorded
