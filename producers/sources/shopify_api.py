"""Shopify's Admin API order (the REST Order resource: the body of the `orders/*` webhooks), mapped with the decisions
of the CSV export's reader (shopify.py): undiscounted unit prices, all discounts as one DISCOUNT line, shipping as
one SHIPPING line, order-level tax lines unless taxes are included, a balancing line for duties and tips, one payment
of `total_price − total_outstanding` for a paid order (gateway from `payment_gateway_names`), refunds in a custom
field. The payment's time is `processed_at`, so the same order delivered again (`orders/paid` after `orders/create`,
a retry) has the same payment and is not paid twice.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from producers.sources import stores
from producers.sources.base import Format, Mapped, ReadOptions, Unmappable
from producers.sources.shopify import PAID
from producers.sources.stores import ZERO, Errors, amount, cents
from worker.contract import FieldError


def external_id(order: Any, options: ReadOptions) -> str | None:
    name = order.get("name") if isinstance(order, dict) else None
    if not isinstance(name, str) or not name.strip().removeprefix("#"):
        number = order.get("order_number") if isinstance(order, dict) else None
        name = str(number) if isinstance(number, int) and not isinstance(number, bool) else None
    return options.prefix("shopify") + name.strip().removeprefix("#") if name else None


def to_order(order: Any, options: ReadOptions) -> dict:
    if not isinstance(order, dict):
        raise Unmappable([FieldError("", "must be a JSON object", "send Shopify's order resource as the body")])
    errors = Errors()
    ext = external_id(order, options)
    if ext is None:
        errors.add("name", "the order has no name or order_number", "send Shopify's whole order resource")

    def money(key: str) -> Decimal | None:
        return amount(order.get(key), key, errors)

    items = _products(order, errors)
    discount, taxes, total = money("total_discounts"), money("total_tax"), money("total_price")
    if discount:
        codes = [c.get("code") for c in _dicts(order, "discount_codes") if isinstance(c.get("code"), str)]
        items.append(stores.line("DISCOUNT", "Discount " + ", ".join(codes) if codes else "Discount", discount))
    shipping_lines = _dicts(order, "shipping_lines")
    shipping = sum((amount(s.get("price"), "shipping_lines.price", errors) or ZERO for s in shipping_lines), ZERO)
    if shipping:
        title = next((s.get("title") for s in shipping_lines if isinstance(s.get("title"), str)), None)
        items.append(stores.line("SHIPPING", f"Shipping: {title}" if title else "Shipping", shipping))
    if taxes and not order.get("taxes_included"):
        items += _tax_lines(order, taxes, errors)
    items = stores.balance(items, total) if not errors else items

    status = order.get("financial_status") if isinstance(order.get("financial_status"), str) else None
    created = stores.store_time(order.get("created_at"), "created_at", errors, options)
    paid_at = stores.store_time(order.get("processed_at"), "processed_at", errors, options) or created
    payments = []
    if status in PAID and total:
        paid = total - (money("total_outstanding") or ZERO)
        gateways = order.get("payment_gateway_names") if isinstance(order.get("payment_gateway_names"), list) else []
        method = stores.payment_type(gateways or [order.get("gateway")], "payment_gateway_names", errors, options)
        if paid > 0 and method:
            payments.append({"amount": cents(paid), "method": method, "paid_at": paid_at,
                             "notes": f"Shopify: {', '.join(map(str, gateways))}"[:200]})
    if order.get("cancelled_at") and status:
        status = f"{status}, cancelled"
    refunded = sum((amount(t.get("amount"), "refunds.transactions.amount", errors) or ZERO
                    for refund in _dicts(order, "refunds") for t in _dicts(refund, "transactions")
                    if t.get("kind") == "refund" and t.get("status", "success") == "success"), ZERO)
    data = {
        "external_id": ext,
        "order_time": created,
        "title": f"Shopify order {order.get('name') or ext}"[:200],
        "order_type": "OFFLINE" if order.get("source_name") == "pos" else "ONLINE",
        "customer": _customer(order, errors),
        "items": items,
        "payments": payments,
        "custom_fields": stores.custom_fields(status, order.get("currency") or None, refunded),
        "notes": _notes(order),
    }
    mapped = Mapped({k: v for k, v in data.items() if v is not None}, {})
    if errors:
        raise Unmappable(errors, mapped)
    return mapped


def _dicts(part: Any, key: str) -> list[dict]:
    value = part.get(key) if isinstance(part, dict) else None
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _products(order: dict, errors: Errors) -> list[dict]:
    items = []
    for index, entry in enumerate(_dicts(order, "line_items")):
        column = f"line_items[{index}]"
        item: dict[str, Any] = {"type": "PRODUCT", "sku": entry.get("sku") or None,
                                "name": entry.get("title") or entry.get("name")}
        if not item["sku"]:
            errors.add(f"{column}.sku", "the line item has no SKU",
                       "Keap products are found by SKU: give the product a SKU in Shopify")
        quantity = stores.whole(entry.get("quantity"), f"{column}.quantity", errors)
        price = amount(entry.get("price"), f"{column}.price", errors)
        if quantity is not None:
            item["quantity"] = quantity
        if price is not None:
            item["unit_price"] = cents(price) if price == price.quantize(Decimal("0.01")) else str(price)
        items.append(item)
    if not items:
        errors.add("line_items", "the order has no line items", "send Shopify's whole order resource")
    return items


def _tax_lines(order: dict, taxes: Decimal, errors: Errors) -> list[dict]:
    named = [(t.get("title") or "Tax", amount(t.get("price"), "tax_lines.price", errors))
             for t in _dicts(order, "tax_lines")]
    named = [(str(name), value) for name, value in named if value]
    if named and sum(value for _, value in named) == taxes:
        return [stores.line("TAX", name, value) for name, value in named]
    return [stores.line("TAX", "Taxes", taxes)]


def _customer(order: dict, errors: Errors) -> dict:
    person = order.get("customer") if isinstance(order.get("customer"), dict) else {}
    billing = order.get("billing_address") if isinstance(order.get("billing_address"), dict) else {}
    shipping = order.get("shipping_address") if isinstance(order.get("shipping_address"), dict) else {}
    customer = {
        "email": order.get("email") or order.get("contact_email") or person.get("email") or None,
        "given_name": person.get("first_name") or billing.get("first_name") or None,
        "family_name": person.get("last_name") or billing.get("last_name") or None,
        "company": billing.get("company") or None,
        "phone": order.get("phone") or person.get("phone") or billing.get("phone") or None,
        "billing_address": _address(billing, "billing_address", errors, names=False),
        "shipping_address": _address(shipping, "shipping_address", errors, names=True),
    }
    return {k: v for k, v in customer.items() if v is not None}


def _address(part: dict, column: str, errors: Errors, names: bool) -> dict | None:
    text = {k: v if isinstance(v, str) else None for k, v in part.items()}
    extra = {"first_name": text.get("first_name"), "last_name": text.get("last_name")} if names else {}
    return stores.address(errors, f"{column}.country_code", line1=text.get("address1"), line2=text.get("address2"),
                          locality=text.get("city"), region=text.get("province_code") or text.get("province"),
                          postal_code=text.get("zip"), country_code=text.get("country_code"), **extra)


def _notes(order: dict) -> str | None:
    attributes = [f"{a.get('name')}: {a.get('value')}" for a in _dicts(order, "note_attributes")]
    note = order.get("note") if isinstance(order.get("note"), str) else None
    return "\n\n".join(filter(None, (note, "\n".join(attributes)))) or None


# Webhooks only (producers/deliveries.py): no file holds this format, so it reads no records and detects nothing.
FORMAT = Format("shopify-api", "Shopify Admin API order (webhook body)", lambda stream, options: iter(()), to_order,
                external_id, lambda head: False, family="shopify")
