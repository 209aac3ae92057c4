"""Step 1: resolve contact, products and custom fields, then create the whole order in one Keap call."""
from __future__ import annotations

import logging

from worker.messages import Order
from worker.steps import payloads, resolve
from worker.steps.base import StepContext, load

log = logging.getLogger(__name__)


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    if "order_id" in state.results:
        return
    contact_id = state.results.get("contact_id") or resolve.contact_id(ctx, order)
    product_ids = resolve.product_ids(ctx, order)
    fields = resolve.order_fields(ctx, order, [ctx.external_id_label, *order.custom_fields])
    id_field = fields[ctx.external_id_label]

    if "order_id" in state.intents:
        # An earlier attempt sent the create and never heard back: the order may exist. Keap has no
        # idempotency key, so look for our external id before writing again.
        existing = ctx.keap.orders.find_by_custom_field(id_field["field_name"], external_id)
        if existing:
            log.info("order %s: found order %s from an earlier attempt", external_id, existing[0]["id"])
            ctx.ledger.record(external_id, {"contact_id": contact_id, **_created(order, existing[0])})
            return

    values = payloads.custom_field_values(
        {label: meta["id"] for label, meta in fields.items()},
        {ctx.external_id_label: external_id, **order.custom_fields},
    )
    ctx.ledger.record(external_id, {"contact_id": contact_id})
    ctx.ledger.mark_intent(external_id, "order_id")
    created = ctx.keap.orders.create(payloads.order_body(order, contact_id, product_ids, values))
    ctx.ledger.record(external_id, _created(order, created))
    log.info("order %s: created Keap order %s", external_id, created["id"])


def _created(order: Order, keap_order: dict) -> dict[str, str]:
    """Everything the create wrote inline, so add_items and set_custom_fields have nothing left to do."""
    results = {"order_id": str(keap_order["id"])}
    keap_items = keap_order.get("order_items") or []
    for i in range(len(order.items)):
        results[f"item:{i}"] = str(keap_items[i]["id"]) if i < len(keap_items) and keap_items[i].get("id") else "inline"
    for label, value in order.custom_fields.items():
        results[f"field:{label}"] = payloads.field_stamp(value)
    return results
