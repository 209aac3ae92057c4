"""Read an import back through the Keap API and compare every order with its source file.

Checks, per external id: exactly one Keap order with exactly that id, of that customer; its items (type, SKU or
name, quantity, price, cost); total and total paid; each payment's amount; custom field values; subscriptions
(created for this order, of its contact, with its quantity, and no subscription recorded for two orders).
"""
from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from producers.sources import read_file
from producers.sources.base import ReadOptions
from worker.keap import KeapTransientError, money
from worker.steps import payloads, resolve
from worker.contract import Order
from worker.steps.base import OrderRejected, StepContext
from worker.steps.lookups import orders_with_external_id


def verify_file(path: Path, fmt: str | None, ctx: StepContext,
                options: ReadOptions | None = None) -> tuple[int, list[str]]:
    """Returns (orders checked, problems). Invalid rows of the file are not checked (they were never sent)."""
    label = ctx.external_id_label
    fields = {meta["label"]: meta for meta in ctx.keap.orders.get_model().get("custom_fields") or []}
    if label not in fields:
        return 0, [f"Keap has no order custom field {label!r}: nothing was imported here"]
    sub_field = next((m for m in ctx.keap.subscriptions.get_model().get("custom_fields") or [] if m["label"] == label),
                     None)
    owners: dict[str, str] = {}  # subscription id -> the order of the file it was recorded for
    checked, problems = 0, []
    options = options or ReadOptions.from_settings()
    for row in read_file(path, fmt, options):
        if row.order is None:
            continue
        checked += 1
        problems += [f"order {row.order.external_id}: {p}" for p in _checked(row.order, ctx, fields, sub_field, owners)]
    return checked, problems


def _checked(order: Order, ctx: StepContext, *args) -> list[str]:
    """verify_order, asked again after a transient Keap error (read-only, so safe); reported if it persists."""
    for attempt in range(3):
        try:
            return list(verify_order(order, ctx, *args))
        except KeapTransientError as exc:
            if attempt == 2:
                return [f"could not be checked: {exc}; run verify again"]
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def verify_order(order: Order, ctx: StepContext, fields: dict[str, dict], sub_field: dict | None,
                 owners: dict[str, str]) -> Iterator[str]:
    keap, ledger, external_id_label = ctx.keap, ctx.ledger, ctx.external_id_label
    found = orders_with_external_id(ctx, fields[external_id_label], order.external_id)
    if len(found) != 1:
        yield f"expected exactly 1 Keap order, found {len(found)}"
        return
    keap_order = keap.orders.get(found[0]["id"])
    email = str((keap_order.get("contact") or {}).get("email") or "")
    if email and email.casefold() != order.customer.email.casefold():
        yield f"Keap order {keap_order['id']} belongs to another customer (contact {keap_order['contact'].get('id')})"
    try:
        product_ids = resolve.product_ids(ctx, order)
    except OrderRejected as exc:
        yield str(exc)
        return
    want = Counter(payloads.item_key(item, product_ids.get(item.sku or "")) for item in order.items)
    got = Counter(payloads.keap_item_key(line) for line in keap_order.get("order_items") or [])
    if want != got:
        yield f"items differ: missing {sorted(map(str, (want - got).elements()))}, extra {sorted(map(str, (got - want).elements()))}"
    if money(keap_order["total"]) != order.total:
        yield f"total is {money(keap_order['total'])}, expected {order.total}"
    if money(keap_order.get("total_paid") or {"amount": 0}) != order.payments_total:
        yield f"total paid is {money(keap_order.get('total_paid') or {'amount': 0})}, expected {order.payments_total}"

    paid = sorted(Decimal(str(p["amount"])) for p in keap.orders.list_payments(keap_order["id"]))
    if paid != sorted(p.amount for p in order.payments):
        yield f"payments are {[str(a) for a in paid]}, expected {sorted(str(p.amount) for p in order.payments)}"

    contents = {cf.get("id"): cf.get("content") for cf in keap_order.get("custom_fields") or []}
    for label, value in {external_id_label: order.external_id, **order.custom_fields}.items():
        meta = fields.get(label)
        if meta is None or str(contents.get(meta["id"])) != str(value):
            yield f"custom field {label!r} is {contents.get(meta['id']) if meta else 'missing'!r}, expected {value!r}"

    state = ledger.get(order.external_id)
    for i, sub in enumerate(order.subscriptions):
        sub_id = state.results.get(f"subscription:{i}") if state else None
        if not sub_id:
            yield f"subscriptions[{i}]: no subscription recorded"
            continue
        if owners.setdefault(sub_id, order.external_id) != order.external_id:
            yield f"subscriptions[{i}]: Keap subscription {sub_id} is also recorded for order {owners[sub_id]}"
        keap_sub = keap.subscriptions.get(sub_id)
        if str(keap_sub.get("contact_id")) != str((keap_order.get("contact") or {}).get("id")):
            yield f"subscriptions[{i}]: Keap subscription {sub_id} belongs to another contact"
        if int(keap_sub.get("quantity", 1)) != sub.quantity:
            yield f"subscriptions[{i}]: Keap subscription {sub_id} has quantity {keap_sub.get('quantity')}"
        marks = {str(cf.get("id")): cf.get("content") for cf in keap_sub.get("custom_fields") or []}
        if sub_field is None or marks.get(str(sub_field["id"])) != order.external_id:
            yield (f"subscriptions[{i}]: Keap subscription {sub_id} was created for another order "
                   f"({marks.get(str(sub_field['id'])) if sub_field else 'unmarked'})")
