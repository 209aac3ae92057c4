"""Step 4: set custom fields whose value is not yet recorded as set (none after a fresh create_order)."""
from __future__ import annotations

from worker.steps import payloads, resolve
from worker.steps.base import StepContext, keap_order_id, load


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    todo = {
        label: value
        for label, value in order.custom_fields.items()
        if state.results.get(f"field:{label}") != payloads.field_stamp(value)
    }
    if not todo:
        return
    order_id = keap_order_id(state)
    fields = resolve.order_fields(ctx, order, todo)
    # PATCH of custom fields is idempotent, so no intent marker or reconciliation is needed.
    ctx.keap.orders.update(
        order_id,
        {"custom_fields": payloads.custom_field_values({label: meta["id"] for label, meta in fields.items()}, todo)},
        update_mask=["custom_fields"],
    )
    ctx.ledger.record(external_id, {f"field:{label}": payloads.field_stamp(value) for label, value in todo.items()})
