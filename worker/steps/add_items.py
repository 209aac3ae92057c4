"""Step 2: add the order's items that are not on the Keap order yet (none for a freshly created order)."""
from __future__ import annotations

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
        if f"item:{i}" in state.intents:
            # The earlier add may have landed: compare the Keap order's items before adding again.
            if _already_on_order(ctx, order_id, order.items[i]):
                ctx.ledger.record(external_id, {f"item:{i}": "reconciled"})
                continue
        ctx.ledger.mark_intent(external_id, f"item:{i}")
        added = ctx.keap.orders.add_item(order_id, payloads.item_body(order.items[i], product_ids.get(order.items[i].sku or "")))
        ctx.ledger.record(external_id, {f"item:{i}": str(added.get("id", "added"))})


def _already_on_order(ctx: StepContext, order_id: str, item) -> bool:
    for existing in ctx.keap.orders.get(order_id).get("order_items") or []:
        if existing.get("name") == item.name and int(existing.get("quantity", 0)) == item.quantity:
            return True
    return False
