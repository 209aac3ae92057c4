"""Step 1: resolve contact, products and custom fields, create the whole order in one Keap call, check its total."""
from __future__ import annotations

import logging

from worker.contract import Order
from worker.keap import KeapValidationError, money
from worker.steps import lookups, payloads, readings, resolve
from worker.steps.base import OrderRejected, Results, StepContext, load, write_once

log = logging.getLogger(__name__)


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    if "order_id" not in state.results:
        productless = [i for i, item in enumerate(order.items) if item.type != "PRODUCT"]
        if productless and readings.get(ctx.ledger, "productless_lines") == "refused":
            raise OrderRejected(_productless(order, productless, "`keap-orders doctor --probe` found that"))
        contact_id = state.results.get("contact_id") or resolve.contact_id(ctx, order)
        product_ids = resolve.product_ids(ctx, order)
        fields = resolve.order_fields(ctx, order, [ctx.external_id_label, *order.custom_fields])
        id_field = fields[ctx.external_id_label]
        if "contact_id" not in state.results:
            ctx.ledger.record(external_id, {"contact_id": contact_id})
        values = payloads.custom_field_values(
            {label: meta["id"] for label, meta in fields.items()},
            {ctx.external_id_label: external_id, **order.custom_fields},
        )
        body = payloads.order_body(order, contact_id, product_ids, values)
        write_once(ctx, state, "order_id",
                   find=lambda: _find(ctx, order, id_field, contact_id),
                   write=lambda: _created(order, _create(ctx, order, body, productless)))
        log.info("order %s: Keap order %s", external_id, state.results["order_id"])
    lookups.check_total(ctx, state, order)


def _create(ctx: StepContext, order: Order, body: dict, productless: list[int]) -> dict:
    try:
        created = ctx.keap.orders.create(body)
    except KeapValidationError as exc:
        if productless and "product" in exc.message.lower():
            raise OrderRejected(_productless(order, productless, f"Keap answered ({exc.message}):")) from exc
        raise
    # Without a total in the answer the total check would have nothing to compare: read the order.
    return created if created.get("total") else ctx.keap.orders.get(created["id"])


def _productless(order: Order, lines: list[int], why: str) -> str:
    return (f"order {order.external_id}: items{lines}: {why} this Keap account refuses order lines without a "
            f"product (SHIPPING, TAX, FEE, DISCOUNT); nothing was created. Import the order without those lines "
            f"(or ask Keap to accept them and run `keap-orders doctor --probe` again), then run "
            f"`keap-orders retry {order.external_id}`")


def _find(ctx: StepContext, order: Order, id_field: dict[str, str], contact_id: str) -> Results | None:
    """The Keap order carrying exactly this external id, or None; two of them, or one of another customer, stop
    the order."""
    exact = lookups.orders_with_external_id(ctx, id_field, order.external_id)
    if not exact:
        return None
    if len(exact) > 1:
        ids = ", ".join(str(o["id"]) for o in exact)
        raise OrderRejected(
            f"order {order.external_id}: Keap has {len(exact)} orders with this external id ({ids}); keep one, "
            f"delete the others in Keap, then run `keap-orders retry {order.external_id}`"
        )
    found = exact[0]
    owner = str((found.get("contact") or {}).get("id") or found.get("contact_id") or "")
    if owner and owner != contact_id:
        raise OrderRejected(
            f"order {order.external_id}: Keap order {found['id']} carries this external id but belongs to another "
            f"contact ({owner}, not {contact_id}); check which store order it is, then run "
            f"`keap-orders retry {order.external_id}`"
        )
    if "order_items" not in found:
        found = ctx.keap.orders.get(found["id"])
    return _created(order, found)


def _created(order: Order, keap_order: dict) -> Results:
    """Everything the create wrote inline, so add_items and set_custom_fields have nothing left to do."""
    results = {"order_id": str(keap_order["id"])}
    if keap_order.get("total"):
        results["keap_total"] = str(money(keap_order["total"]))
    keap_items = keap_order.get("order_items") or []
    for i in range(len(order.items)):
        results[f"item:{i}"] = str(keap_items[i]["id"]) if i < len(keap_items) and keap_items[i].get("id") else "inline"
    for label, value in order.custom_fields.items():
        results[f"field:{label}"] = payloads.field_stamp(value)
    return results
