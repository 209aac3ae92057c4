"""Read an import back through the Keap API and compare every order with its source file.

Checks, per external id: exactly one Keap order; its items (type, SKU or name, quantity, price, cost);
total and total paid; each payment's amount; custom field values; subscriptions (contact, plan, quantity).
"""
from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from producers.sources import READERS, detect_format
from producers.sources.base import ReadOptions
from worker.keap import KeapClient, money
from worker.ledger import Ledger
from worker.messages import Order


def verify_file(path: Path, fmt: str | None, keap: KeapClient, ledger: Ledger,
                external_id_label: str, options: ReadOptions | None = None) -> tuple[int, list[str]]:
    """Returns (orders checked, problems). Invalid rows of the file are not checked (they were never sent)."""
    model = keap.orders.get_model().get("custom_fields") or []
    fields = {meta["label"]: meta for meta in model}
    if external_id_label not in fields:
        return 0, [f"Keap has no order custom field {external_id_label!r}: nothing was imported here"]
    checked, problems = 0, []
    options = options or ReadOptions.from_settings()
    for row in READERS[detect_format(path, fmt, options)](path, options):
        if row.order is None:
            continue
        checked += 1
        problems += [f"order {row.order.external_id}: {p}" for p in verify_order(row.order, keap, ledger, fields,
                                                                                 external_id_label)]
    return checked, problems


def verify_order(order: Order, keap: KeapClient, ledger: Ledger, fields: dict[str, dict],
                 external_id_label: str) -> Iterator[str]:
    found = keap.orders.find_by_custom_field(fields[external_id_label]["field_name"], order.external_id)
    if len(found) != 1:
        yield f"expected exactly 1 Keap order, found {len(found)}"
        return
    keap_order = keap.orders.get(found[0]["id"])

    def line(item_type, name, quantity, price, cost) -> tuple:
        return item_type, name, int(quantity), Decimal(price or 0), Decimal(cost or 0)

    want = Counter(line(i.type, i.sku or i.name, i.quantity, i.unit_price, i.unit_cost) for i in order.items)
    got = Counter(
        line(i.get("item_type") or "PRODUCT", (i.get("product") or {}).get("sku") or i.get("name"), i.get("quantity", 0),
             money(i["price_per_unit"]) if i.get("price_per_unit") else 0,
             money(i["cost_per_unit"]) if i.get("cost_per_unit") else 0)
        for i in keap_order.get("order_items") or []
    )
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
        keap_sub = keap.subscriptions.get(sub_id)
        if keap_sub.get("contact_id") != state.results.get("contact_id") or int(keap_sub.get("quantity", 1)) != sub.quantity:
            yield f"subscriptions[{i}]: Keap subscription {sub_id} has another contact or quantity"
