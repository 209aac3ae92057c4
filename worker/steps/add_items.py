"""Step 2: add the order's items that are not on the Keap order yet (none for a freshly created order)."""
from __future__ import annotations

from worker.keap import money
from worker.ledger import OrderState
from worker.messages import Item, Order
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
        if f"item:{i}" in state.intents and _landed(ctx, order_id, order, state, i, product_id):
            ctx.ledger.record(external_id, {f"item:{i}": "reconciled"})
            state.results[f"item:{i}"] = "reconciled"
            continue
        ctx.ledger.mark_intent(external_id, f"item:{i}")
        added = ctx.keap.orders.add_item(order_id, payloads.item_body(item, product_id))
        ctx.ledger.record(external_id, {f"item:{i}": str(added.get("id", "added"))})
        state.results[f"item:{i}"] = str(added.get("id", "added"))


def _landed(ctx: StepContext, order_id: str, order: Order, state: OrderState, i: int, product_id: str | None) -> bool:
    """Did an earlier, unanswered add of item i reach Keap? More such lines on the order than we recorded = yes."""
    item = order.items[i]
    on_keap = sum(_same(line, item, product_id) for line in ctx.keap.orders.get(order_id).get("order_items") or [])
    recorded = sum(
        1 for j, other in enumerate(order.items)
        if j != i and f"item:{j}" in state.results and (other.type, other.sku, other.name, other.quantity,
                                                         other.unit_price) == (item.type, item.sku, item.name,
                                                                               item.quantity, item.unit_price)
    )
    return on_keap > recorded


def _same(line: dict, item: Item, product_id: str | None) -> bool:
    same_thing = ((line.get("product") or {}).get("id") == product_id if product_id else line.get("name") == item.name)
    price = money(line["price_per_unit"]) if line.get("price_per_unit") else None
    return same_thing and int(line.get("quantity", 0)) == item.quantity and price == item.unit_price
