"""Shopify's orders export (Admin → Orders → Export, "CSV for Excel…" or plain CSV): one row per line item,
order-level values on the first row of each order only. Columns are found by name; any may be missing.

Money: `Lineitem price` is the undiscounted unit price; `Discount Amount` is one DISCOUNT line (an order-level
code is not also in `Lineitem discount`); `Shipping` one SHIPPING line; `Taxes` TAX lines (`Tax N Name/Value`)
unless the order is tax-inclusive (`Subtotal + Shipping = Total`); anything else in `Total` (duties, tips) is
one more line, so the Keap total is the store's. Paid (also later refunded) orders get one payment of
`Total − Outstanding Balance`; refunds cannot be recorded through Keap's API and go to a custom field.
"""
from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, TextIO

from producers.sources import stores
from producers.sources.base import (Column, Format, Header, Mapped, Problem, ReadOptions, Record, Unmappable)
from producers.sources.csv import RowGroup, grouped_records
from producers.sources.stores import ZERO, Errors, amount, cents

PAID = {"paid", "partially_paid", "partially_refunded", "refunded"}
TAXES = [(f"Tax {n} Name", f"Tax {n} Value") for n in range(1, 6)]


def _key(header: list[str]) -> str | Problem:
    if "Name" not in header or "Lineitem quantity" not in header:
        return Problem("header: not a Shopify orders export (no 'Name' and 'Lineitem quantity' columns)",
                       "export with Orders → Export in Shopify's admin, or give the right --format")
    return "Name"


def _records(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
    return grouped_records(stream, options, _key)


def external_id(group: RowGroup, options: ReadOptions) -> str:
    return options.prefix("shopify") + group.key.removeprefix("#")


def to_order(group: RowGroup, options: ReadOptions) -> dict:
    errors = Errors(group.problems)
    if not group.rows:
        raise Unmappable(errors)
    # Order-level values are on the first row that has them; item rows leave them empty.
    first = next((row for _, row in group.rows if row.get("Financial Status") or row.get("Id")), group.rows[0][1])
    ids = {(line, row["Id"]) for line, row in group.rows if row.get("Id")}
    if len({order_id for _, order_id in ids}) > 1:
        later = sorted(ids)[-1][0]
        errors.add("Name", f"two orders share this name (another Id at line {later})",
                   "Shopify allows repeated order names: export them separately or rename one")

    def money(column: str) -> Decimal | None:
        return amount(first.get(column), column, errors)

    items, lines = _products(group, errors)
    gross = sum((Decimal(i["unit_price"]) * i.get("quantity", 1) for i in items if "unit_price" in i), ZERO)
    discount, shipping, taxes, total = money("Discount Amount"), money("Shipping"), money("Taxes"), money("Total")
    if discount:
        code = first.get("Discount Code")
        items.append(stores.line("DISCOUNT", f"Discount {code}" if code else "Discount", discount))
    line_discounts = sum((amount(row.get("Lineitem discount"), "Lineitem discount", errors) or ZERO
                          for _, row in group.rows), ZERO)
    subtotal = money("Subtotal")
    if line_discounts and subtotal is not None and gross - (discount or ZERO) - line_discounts == subtotal:
        items.append(stores.line("DISCOUNT", "Line item discounts", line_discounts))
    if shipping:
        method = first.get("Shipping Method")
        items.append(stores.line("SHIPPING", f"Shipping: {method}" if method else "Shipping", shipping))
    before_tax = sum((Decimal(i["unit_price"]) * (-1 if i["type"] == "DISCOUNT" else 1) * i.get("quantity", 1)
                      for i in items if "unit_price" in i), ZERO)
    tax_inclusive = bool(taxes) and total is not None and abs(before_tax - total) < Decimal("0.01")
    if taxes and not tax_inclusive:
        items += _tax_lines(first, taxes, errors)
    duties = money("Duties")
    if duties:
        items.append(stores.line("FEE", "Duties", duties))
    items = stores.balance(items, total) if not errors else items

    status = first.get("Financial Status")
    created = stores.store_time(first.get("Created at"), "Created at", errors, options)
    payments = []
    if status in PAID and total:
        paid = total - (money("Outstanding Balance") or ZERO)
        method = stores.payment_type([first.get("Payment Method")], "Payment Method", errors, options)
        if paid > 0 and method:
            reference = first.get("Payment ID") or first.get("Payment Reference")
            payments.append({"amount": cents(paid), "method": method,
                             "paid_at": stores.store_time(first.get("Paid at"), "Paid at", errors, options) or created,
                             "external_id": reference[:100] if reference else None,
                             "notes": f"Shopify: {first.get('Payment Method')}"[:200]})
    if first.get("Cancelled at") and status:
        status = f"{status}, cancelled"
    data = {
        "external_id": external_id(group, options),
        "order_time": created,
        "title": f"Shopify order {group.key}"[:200],
        "order_type": "OFFLINE" if first.get("Source") == "pos" else "ONLINE",
        "customer": _customer(group, first, errors),
        "items": items,
        "payments": payments,
        "custom_fields": stores.custom_fields(status, first.get("Currency"), money("Refunded Amount")),
        "notes": "\n\n".join(filter(None, (first.get("Notes"), first.get("Note Attributes")))) or None,
    }
    mapped = Mapped({k: v for k, v in data.items() if v is not None}, {"items": lines})
    if errors:
        raise Unmappable(errors, mapped)
    return mapped


def _products(group: RowGroup, errors: Errors) -> tuple[list[dict], list[int]]:
    items, lines = [], []
    for line, row in group.rows:
        if not (row.get("Lineitem quantity") or row.get("Lineitem name")):
            continue
        item: dict[str, Any] = {"type": "PRODUCT", "sku": row.get("Lineitem sku"), "name": row.get("Lineitem name")}
        if not item["sku"]:
            errors.add("Lineitem sku", f"line {line}: the line item has no SKU",
                       "Keap products are found by SKU: give the product a SKU in Shopify and export again")
        quantity = stores.whole(row.get("Lineitem quantity"), "Lineitem quantity", errors)
        price = amount(row.get("Lineitem price"), "Lineitem price", errors)
        if quantity is not None:
            item["quantity"] = quantity
        if price is not None:
            item["unit_price"] = cents(price) if price == price.quantize(Decimal("0.01")) else str(price)
        items.append(item)
        lines.append(line)
    return items, lines


def _tax_lines(first: dict, taxes: Decimal, errors: Errors) -> list[dict]:
    named = [(first.get(name), amount(first.get(value), value, errors)) for name, value in TAXES]
    named = [(name or "Tax", value) for name, value in named if value]
    if named and sum(value for _, value in named) == taxes:
        return [stores.line("TAX", name, value) for name, value in named]
    return [stores.line("TAX", "Taxes", taxes)]


def _customer(group: RowGroup, first: dict, errors: Errors) -> dict:
    email = next((row["Email"] for _, row in group.rows if row.get("Email")), None)
    given, family = stores.split_name(first.get("Billing Name") or first.get("Shipping Name"))
    ship_given, ship_family = stores.split_name(first.get("Shipping Name"))
    customer = {
        "email": email, "given_name": given, "family_name": family, "company": first.get("Billing Company"),
        "phone": first.get("Phone") or first.get("Billing Phone") or first.get("Shipping Phone"),
        "billing_address": _address(first, "Billing", errors),
        "shipping_address": _address(first, "Shipping", errors, first_name=ship_given, last_name=ship_family),
    }
    return {k: v for k, v in customer.items() if v is not None}


def _address(row: dict, kind: str, errors: Errors, **names: Any) -> dict | None:
    return stores.address(
        errors, f"{kind} Country", line1=row.get(f"{kind} Address1") or row.get(f"{kind} Street"),
        line2=row.get(f"{kind} Address2"), locality=row.get(f"{kind} City"),
        region=row.get(f"{kind} Province") or row.get(f"{kind} Province Name"), postal_code=row.get(f"{kind} Zip"),
        country_code=row.get(f"{kind} Country"), **names)


def _detect(head: Any) -> bool:
    return head.header is not None and {"Name", "Lineitem quantity"} <= head.header


_ADDRESS = "addresses are left out of the Keap contacts"
HEADER = Header(
    needed=(
        Column(("Name",), "identity: the order number"),
        Column(("Email",), "identity: the customer Keap finds or creates"),
        Column(("Created at",), "the order time"),
        Column(("Lineitem sku",), "lines: the Keap product"),
        Column(("Lineitem quantity",), "lines"),
        Column(("Lineitem price",), "lines: the price charged"),
        Column(("Total",), "money: the order total"),
        Column(("Financial Status",), "payment state: paid or not"),
        Column(("Paid at",), "payment state: when it was paid"),
        Column(("Outstanding Balance",), "payment state: what is still owed"),
        Column(("Payment Method",), "payment state: the Keap payment type"),
        Column(("Currency",), "money: the currency of every amount"),
    ),
    optional=(
        Column(("Discount Amount",), "money", "discounts become part of one balancing line, not a DISCOUNT line"),
        Column(("Shipping",), "money", "shipping becomes part of one balancing line, not a SHIPPING line"),
        Column(("Taxes",), "money", "taxes become part of one balancing line, not TAX lines"),
        Column(("Refunded Amount",), "money", "refunds are not recorded in the 'Refunded Amount' custom field"),
        Column(("Billing Address1", "Billing Street"), "customer", _ADDRESS),
        Column(("Shipping Address1", "Shipping Street"), "customer", _ADDRESS),
        Column(("Billing Name", "Shipping Name"), "customer", "contacts get no names"),
    ),
)
FORMAT = Format("shopify", "Shopify orders export (CSV, one row per line item)", _records, to_order, external_id,
                _detect, family="shopify", header=HEADER)
