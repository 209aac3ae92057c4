"""WooCommerce orders: the REST API v3 order JSON (one order per line or JSON arrays, e.g. saved pages of
`GET /wp-json/wc/v3/orders`), and the default CSV layouts of the common export plugins — Advanced Order Export
(AlgolPlus), WebToffee Order Export, SkyVerge Customer/Order CSV Export — each turned into the REST shape first,
so one mapping serves all.

Money: unit prices are line subtotals / quantity (before discounts, without tax) with `discount_total` as one
DISCOUNT line, except AOE's default layout, whose `Item Cost` is already discounted (then no DISCOUNT line).
Shipping, fee and tax lines as the order lists them; a difference to `total` (rounding of unit prices) is one
more line. An order is paid when it has a paid date, or, where the layout has none, when its status is
completed, refunded, or processing with a gateway other than cash on delivery. Refunds go to a custom field.
Plugin CSVs write the store's local time without an offset: they need STORE_TIMEZONE.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TextIO

from producers.sources import stores
from producers.sources.base import (Column, FileRejected, Format, Mapped, Problem, ReadOptions, Record,
                                    Unmappable)
from producers.sources.csv import RowGroup, grouped_records
from producers.sources.jsonl import json_records
from producers.sources.stores import ZERO, Errors, amount, cents
from worker.contract import FieldError

FAMILY = "woocommerce"
ADDRESS_PARTS = ("first_name", "last_name", "company", "address_1", "address_2", "city", "state", "postcode",
                 "country", "email", "phone")
_COD = re.compile(r"\bcod\b|cash on delivery", re.IGNORECASE)


# --- the REST order -> our order ------------------------------------------------------------------------------------


def _number(order: dict) -> str | None:
    value = order.get("number") or order.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**30:
        return str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def rest_external_id(order: Any, options: ReadOptions) -> str | None:
    number = _number(order) if isinstance(order, dict) else None
    return options.prefix(FAMILY) + number if number else None


def rest_to_order(order: Any, options: ReadOptions, lines: dict[str, list[int]] | None = None) -> dict:
    """Map one REST-shaped order (from the API or built from a plugin CSV) to an order dict."""
    if not isinstance(order, dict):
        raise Unmappable([FieldError("", "must be a JSON object", "write one order object per document")])
    errors = Errors(order.pop("_problems", []))
    number = _number(order)
    if number is None:
        errors.add("number", "the order has no number or id", "export the orders with their number")
    items = _items(order, errors)
    total = amount(order.get("total"), "total", errors)
    items = stores.balance(items, total) if not errors else items

    status = order.get("status") if isinstance(order.get("status"), str) else None
    created = (stores.utc(order.get("date_created_gmt"))
               or stores.store_time(order.get("date_created"), "date_created", errors, options))
    payments = []
    paid_at = stores.utc(order.get("date_paid_gmt")) or (
        stores.store_time(order["date_paid"], "date_paid", errors, options) if order.get("date_paid") else None)
    gateway = [order.get("payment_method_title"), order.get("payment_method")]
    if order.get("_paid_by_status"):
        is_paid = status in ("completed", "refunded") or (status == "processing" and not any(
            isinstance(g, str) and _COD.search(g) for g in gateway))
    else:
        is_paid = paid_at is not None and status not in ("pending", "failed", "cancelled", "trash")
    if is_paid and total:
        method = stores.payment_type(gateway, "payment_method_title", errors, options)
        if method:
            reference = order.get("transaction_id") if isinstance(order.get("transaction_id"), str) else None
            payments.append({"amount": cents(total), "method": method, "paid_at": paid_at or created,
                             "external_id": reference.strip()[:100] if reference and reference.strip() else None,
                             "notes": f"WooCommerce: {gateway[0] or gateway[1]}"[:200]})
    refunds = order.get("refunds") if isinstance(order.get("refunds"), list) else []
    refunded = sum((abs(amount(r.get("total"), "refunds.total", errors) or ZERO) for r in refunds
                    if isinstance(r, dict)), ZERO) or amount(order.get("_refunded"), "refunded", errors)
    data = {
        "external_id": options.prefix(FAMILY) + number if number else None,
        "order_time": created,
        "title": f"WooCommerce order {number}"[:200],
        "customer": _customer(order, errors),
        "items": items,
        "payments": payments,
        "custom_fields": stores.custom_fields(status, order.get("currency") or None, refunded),
        "notes": order.get("customer_note") or None,
    }
    if created is None and "date_created" not in {e.field for e in errors}:
        errors.add("date_created", "the order has no creation date", "export the orders with their dates")
    mapped = Mapped({k: v for k, v in data.items() if v is not None}, {"items": (lines or {}).get("items", [])})
    if errors:
        raise Unmappable(errors, mapped)
    return mapped


def _items(order: dict, errors: Errors) -> list[dict]:
    items = []
    line_items = order.get("line_items") if isinstance(order.get("line_items"), list) else []
    for index, entry in enumerate(line_items):
        entry = entry if isinstance(entry, dict) else {}
        column = f"line_items[{index}]"
        quantity = stores.whole(entry.get("quantity"), f"{column}.quantity", errors)
        if quantity == 0:
            continue  # refunded in full (plugins subtract refunds from quantities)
        given = entry.get("subtotal", entry.get("total"))
        line_total = amount(given, f"{column}.subtotal", errors)
        if given in (None, "") and quantity:
            errors.add(f"{column}.subtotal", "the line item has no subtotal", "export the line items with their totals")
        item: dict[str, Any] = {"type": "PRODUCT", "sku": entry.get("sku") or None,
                                "name": html.unescape(entry["name"]) if isinstance(entry.get("name"), str) else None}
        if not item["sku"]:
            errors.add(f"{column}.sku", "the line item has no SKU",
                       "Keap products are found by SKU: give the product a SKU in WooCommerce and export again")
        if quantity and line_total is not None:
            # Per-unit rounding (10.00 / 3) is evened out by the order's balance line.
            item |= {"quantity": quantity, "unit_price": cents(line_total / quantity)}
        items.append(item)
    if line_items and not items and not errors:
        errors.add("line_items", "every line item was refunded (quantity 0)",
                   "export quantities before refunds (e.g. the 'Quantity' column) to import refunded orders")
    discount = amount(order.get("discount_total"), "discount_total", errors)
    if discount:
        codes = [c.get("code") for c in stores.listed(order, "coupon_lines") if isinstance(c, dict) and c.get("code")]
        items.append(stores.line("DISCOUNT", "Discount " + ", ".join(map(str, codes)) if codes else "Discount",
                                 discount))
    shipping_lines = [s for s in stores.listed(order, "shipping_lines") if isinstance(s, dict)]
    for entry in shipping_lines:
        price = amount(entry.get("total"), "shipping_lines.total", errors)
        if price:
            title = entry.get("method_title")
            items.append(stores.line("SHIPPING", f"Shipping: {title}" if title else "Shipping", price))
    if not shipping_lines:
        price = amount(order.get("shipping_total"), "shipping_total", errors)
        if price:
            items.append(stores.line("SHIPPING", "Shipping", price))
    for entry in stores.listed(order, "fee_lines"):
        entry = entry if isinstance(entry, dict) else {}
        price = amount(entry.get("total"), "fee_lines.total", errors)
        name = entry.get("name") if isinstance(entry.get("name"), str) and entry["name"].strip() else "Fee"
        if price:
            items.append(stores.line("FEE" if price > 0 else "DISCOUNT", html.unescape(name), abs(price)))
    tax = amount(order.get("total_tax"), "total_tax", errors)
    if tax:
        taxes = [(t.get("label") or t.get("rate_code") or "Tax",
                  (amount(t.get("tax_total"), "tax_lines.tax_total", errors) or ZERO)
                  + (amount(t.get("shipping_tax_total"), "tax_lines.shipping_tax_total", errors) or ZERO))
                 for t in stores.listed(order, "tax_lines") if isinstance(t, dict)]
        taxes = [(str(label), value) for label, value in taxes if value]
        if taxes and sum(value for _, value in taxes) == tax:
            items += [stores.line("TAX", label, value) for label, value in taxes]
        else:
            items.append(stores.line("TAX", "Tax", tax))
    return items


def _customer(order: dict, errors: Errors) -> dict:
    billing = order.get("billing") if isinstance(order.get("billing"), dict) else {}
    shipping = order.get("shipping") if isinstance(order.get("shipping"), dict) else {}

    def text(part: dict, key: str) -> str | None:
        value = part.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def address(part: dict, kind: str, names: bool) -> dict | None:
        return stores.address(
            errors, f"{kind}.country", line1=text(part, "address_1"), line2=text(part, "address_2"),
            locality=text(part, "city"), region=text(part, "state"), postal_code=text(part, "postcode"),
            country_code=text(part, "country"),
            **({"first_name": text(part, "first_name"), "last_name": text(part, "last_name")} if names else {}))

    customer = {"email": text(billing, "email"), "given_name": text(billing, "first_name"),
                "family_name": text(billing, "last_name"), "phone": text(billing, "phone"),
                "company": text(billing, "company"), "billing_address": address(billing, "billing", False),
                "shipping_address": address(shipping, "shipping", True)}
    return {k: v for k, v in customer.items() if v is not None}


# --- REST JSON ---------------------------------------------------------------------------------------------------------


def _rest_order(order: Any, options: ReadOptions) -> dict:
    return rest_to_order(order, options)


def _is_rest(head: Any) -> bool:
    return head.json is not None and head.store_json


# The REST order is checked on the keys of the file's first order: the API writes every key on every order.
REST = Format("woocommerce", "WooCommerce REST API v3 orders (JSON: one per line, or arrays)", json_records,
              _rest_order, rest_external_id, _is_rest, family=FAMILY, header=stores.contract(
                  ("number", "id"), ("billing",), ("date_created_gmt", "date_created"), ("line_items",), ("total",),
                  ("status",), ("currency",), ("payment_method_title", "payment_method"), optional=(
                      Column(("date_paid_gmt", "date_paid"), "payment state",
                             "no order is taken as paid (the REST order says paid by its paid date)"),
                      stores.money_column(("shipping_lines",), "shipping charges"), stores.money_column(("fee_lines",), "fees"),
                      stores.money_column(("tax_lines", "total_tax"), "taxes"))))


# --- plugin CSV layouts -> the REST shape ----------------------------------------------------------------------------


def pipe_fields(text: str) -> dict[str, str]:
    """`name:Mug|sku:MUG-WHT|quantity:1` -> dict; a value may hold `:` (split on the first only)."""
    pairs = (part.split(":", 1) for part in text.split("|") if ":" in part)
    return {key.strip(): value.strip() for key, value in pairs}


def _layout(header_needs: set[str], build: Callable[[RowGroup], dict], key: str, name: str
            ) -> tuple[Callable[[TextIO, ReadOptions], Iterator[Record]], Callable, Callable]:
    """records / to_order / external_id of a plugin CSV layout whose rows group by `key`."""

    def key_column(header: list[str]) -> str | Problem:
        if not header_needs <= set(header):
            missing = ", ".join(repr(name) for name in sorted(header_needs - set(header)))
            return Problem(f"header: not a {name} export (missing {missing})", "give the right --format")
        return key

    def records(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
        return grouped_records(stream, options, key_column)

    def to_order(group: RowGroup, options: ReadOptions) -> dict:
        if not group.rows:
            raise Unmappable(list(group.problems))
        order = build(group)
        order["_problems"] = list(group.problems)
        return rest_to_order(order, options, {"items": [line for line, row in group.rows if _has_item(row)]})

    def external_id(group: RowGroup, options: ReadOptions) -> str:
        return options.prefix(FAMILY) + group.key

    return records, to_order, external_id


def _has_item(row: dict) -> bool:
    return bool(row.get("SKU") or row.get("Item Name") or row.get("item_sku") or row.get("item_name"))


def _parties(row: dict, column: Callable[[str, str], str]) -> dict:
    return {kind: {part: row.get(column(kind, part), "") for part in ADDRESS_PARTS} for kind in ("billing", "shipping")}


# Advanced Order Export For WooCommerce (AlgolPlus): labels as headers, one row per product.
_AOE_LABELS = {"first_name": "First Name", "last_name": "Last Name", "company": "Company", "city": "City",
               "state": "State Code", "postcode": "Postcode", "country": "Country Code", "email": "Email",
               "phone": "Phone", "address_1": "Address 1", "address_2": "Address 2"}


def _aoe_column(kind: str, part: str) -> str:
    return f"{_AOE_LABELS[part]} ({kind.capitalize()})"


def _aoe(group: RowGroup) -> dict:
    first = group.rows[0][1]
    order = _parties(first, _aoe_column)
    for kind in ("billing", "shipping"):
        if not order[kind]["address_1"]:
            order[kind]["address_1"] = first.get(f"Address 1&2 ({kind.capitalize()})", "")
    items, discounted = [], "Item Cost Before Discount" not in first
    for _, row in group.rows:
        if _has_item(row):
            quantity = row.get("Quantity") or row.get("Quantity (- Refund)")
            unit = row.get("Item Cost Before Discount") or row.get("Item Cost")
            line_total = str(Decimal(unit) * int(quantity)) if _decimal(unit) and (quantity or "").isdigit() else unit
            items.append({"sku": row.get("SKU"), "name": row.get("Item Name"), "quantity": quantity,
                          "subtotal": line_total})
    return order | {
        "number": first.get("Order Number") or first.get("Order ID"), "status": (first.get("Order Status") or "").lower(),
        "date_created": first.get("Order Date"), "date_paid": first.get("Paid Date"), "currency": first.get("Currency"),
        "customer_note": first.get("Customer Note"), "payment_method_title": first.get("Payment Method Title"),
        "payment_method": first.get("Payment Method"), "transaction_id": first.get("Transaction ID"),
        "line_items": items, "discount_total": None if discounted else first.get("Cart Discount Amount"),
        "shipping_lines": [{"method_title": first.get("Shipping Method Title"),
                            "total": first.get("Order Shipping Amount")}],
        "fee_lines": [{"name": "Fees", "total": first.get("Order Total Fee")}],
        "total_tax": first.get("Order Total Tax Amount"), "total": first.get("Order Total Amount"),
        "_refunded": first.get("Order Refund Amount"), "_paid_by_status": "Paid Date" not in first,
    }


def _decimal(text: str | None) -> bool:
    return bool(text) and re.fullmatch(r"-?[0-9]{1,12}(\.[0-9]{1,12})?", text) is not None


_aoe_records, _aoe_order, _aoe_id = _layout({"Order Number"}, _aoe, "Order Number", "Advanced Order Export")
AOE = Format("woocommerce-aoe", "WooCommerce: Advanced Order Export (AlgolPlus) CSV, default fields", _aoe_records,
             _aoe_order, _aoe_id,
             lambda head: head.header is not None and "Order Number" in head.header
             and any(name.endswith("(Billing)") for name in head.header), family=FAMILY, header=stores.contract(
                 ("Order Number",), ("Email (Billing)",), ("Order Date",), ("SKU",), ("Order Total Amount",),
                 ("Order Status",), ("Currency",), ("Payment Method Title", "Payment Method"), optional=(
                     Column(("Quantity", "Quantity (- Refund)"), "lines", "every line item is reported (no quantity)"),
                     stores.money_column(("Order Shipping Amount",), "shipping charges"), stores.money_column(("Order Total Tax Amount",), "taxes"),
                     stores.money_column(("Order Total Fee",), "fees")), currency_optional=True))


# WebToffee Order Export: column keys as headers, one row per order, items in line_item_N cells.
def _webtoffee(group: RowGroup) -> dict:
    first = group.rows[0][1]
    order = _parties(first, lambda kind, part: f"{kind}_{part}")
    items = []
    for column in sorted((c for c in first if re.fullmatch(r"line_item_[0-9]+", c)), key=lambda c: int(c[10:])):
        fields = pipe_fields(first[column])
        items.append({"sku": fields.get("sku"), "name": fields.get("name"), "quantity": fields.get("quantity"),
                      "subtotal": fields.get("sub_total") or fields.get("total")})
    shipping = pipe_fields(first.get("shipping_items", ""))
    fees = [pipe_fields(fee) for fee in first.get("fee_items", "").split("||") if fee.strip()]
    refunds = [pipe_fields(refund) for refund in first.get("refund_items", "").split(";") if refund.strip()]
    return order | {
        "number": first.get("order_number") or first.get("order_id"), "status": first.get("status"),
        "date_created": first.get("order_date"), "date_paid": first.get("paid_date"),
        "currency": first.get("order_currency"), "customer_note": first.get("customer_note"),
        "payment_method_title": first.get("payment_method_title"), "payment_method": first.get("payment_method"),
        "transaction_id": first.get("transaction_id"), "line_items": items,
        "discount_total": first.get("discount_total"),
        "shipping_lines": [{"method_title": first.get("shipping_method") or shipping.get("method_id"),
                            "total": first.get("shipping_total")}],
        "fee_lines": [{"name": fee.get("name"), "total": fee.get("total")} for fee in fees],
        "total_tax": first.get("tax_total"), "total": first.get("order_total"),
        "refunds": [{"total": refund.get("amount")} for refund in refunds],
    }


_wt_records, _wt_order, _wt_id = _layout({"order_id", "order_number"}, _webtoffee, "order_id", "WebToffee order")
WEBTOFFEE = Format("woocommerce-webtoffee", "WooCommerce: WebToffee Order Export CSV (one row per order)",
                   _wt_records, _wt_order, _wt_id,
                   lambda head: head.header is not None and "order_id" in head.header
                   and bool({"wt_import_key", "line_item_1"} & head.header), family=FAMILY, header=stores.contract(
                       ("order_number", "order_id"), ("billing_email",), ("order_date",), ("line_item_1",),
                       ("order_total",), ("status",), ("order_currency",), ("payment_method_title", "payment_method"),
                       optional=(Column(("paid_date",), "payment state", "no order is taken as paid"),
                                 stores.money_column(("shipping_total",), "shipping charges"), stores.money_column(("tax_total",), "taxes"))))


# SkyVerge Customer/Order CSV Export: "Default - One Row per Item" (item_* columns) or "Default" (line_items cell).
def _skyverge(group: RowGroup) -> dict:
    first = group.rows[0][1]
    order = _parties(first, lambda kind, part: f"{kind}_{part}")
    if "item_sku" in first or "item_name" in first or any("item_quantity" in row for _, row in group.rows):
        items = [{"sku": row.get("item_sku"), "name": row.get("item_name"), "quantity": row.get("item_quantity"),
                  "subtotal": row.get("item_subtotal")} for _, row in group.rows if _has_item(row)]
    else:
        items = [pipe_fields(entry) for entry in first.get("line_items", "").split(";") if entry.strip()]
        items = [{"sku": i.get("sku"), "name": i.get("name"), "quantity": i.get("quantity"),
                  "subtotal": i.get("subtotal")} for i in items]
    shipping = pipe_fields(first.get("shipping_items", ""))
    return order | {
        "number": first.get("order_number") or first.get("order_id"), "status": first.get("status"),
        "date_created": first.get("date"), "currency": first.get("order_currency"),
        "customer_note": first.get("customer_note"), "payment_method": first.get("payment_method"),
        "line_items": items, "discount_total": first.get("discount_total"),
        "shipping_lines": [{"method_title": first.get("shipping_method") or shipping.get("method_title"),
                            "total": first.get("shipping_total")}],
        "fee_lines": [{"name": "Fees", "total": first.get("fee_total")}],
        "total_tax": first.get("tax_total"), "total": first.get("order_total"),
        "_refunded": first.get("refunded_total"), "_paid_by_status": True,
    }


_sv_records, _sv_order, _sv_id = _layout({"order_id", "order_number"}, _skyverge, "order_id", "SkyVerge order")
SKYVERGE = Format("woocommerce-skyverge", "WooCommerce: SkyVerge Customer/Order CSV Export (Default formats)",
                  _sv_records, _sv_order, _sv_id,
                  lambda head: head.header is not None and "order_id" in head.header
                  and ("order_number_formatted" in head.header
                       or {"item_sku", "download_permissions_granted"} <= head.header), family=FAMILY, header=stores.contract(
                      ("order_number", "order_id"), ("billing_email",), ("date",), ("item_sku", "line_items"),
                      ("order_total",), ("status",), ("order_currency",), ("payment_method",),
                      optional=(stores.money_column(("shipping_total",), "shipping charges"), stores.money_column(("tax_total",), "taxes"),
                                stores.money_column(("fee_total",), "fees"))))


# WooCommerce Analytics -> Orders -> Download: recognised only to say why it cannot be imported.
def _analytics_records(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
    raise FileRejected("this is WooCommerce's Analytics → Orders download: it has no emails, addresses, SKUs or "
                       "prices, so its orders cannot be imported",
                       "export the orders with the REST API or an order export plugin (see the README)")


ANALYTICS = Format("woocommerce-analytics", "WooCommerce Analytics → Orders download (recognised, not importable)",
                   _analytics_records, lambda data, options: data, lambda data, options: None,
                   lambda head: head.header is not None and {"Order #", "Items sold"} <= head.header, family=FAMILY)
