"""Pure mapping from our message contract to Keap REST v2 request bodies (field names per the official spec)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from worker.contract import Address, Customer, Item, Order, Payment, Subscription
from worker.keap import money

# Written into each payment's note so a retry can find a payment an earlier attempt may have recorded:
# Keap's payment list returns the note but not the external_source_* fields.
MARKER = "[keap-orders:{key}]"


def keap_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def payment_marker(payment: Payment) -> str:
    return MARKER.format(key=payment.key)


def custom_field_values(field_ids: dict[str, str], values: dict[str, Any]) -> list[dict[str, Any]]:
    """[{id, content}] for Keap; decimals go as text so a custom field never rounds a value."""
    return [
        {"id": field_ids[label], "content": str(value) if isinstance(value, Decimal) else value}
        for label, value in values.items()
    ]


def field_stamp(value: Any) -> str:
    """How the ledger remembers which value a custom field was set to."""
    return json.dumps(value, default=str)


# What a contact create must not carry to a contact it may land on (Keap replaces them whole): see resolve.py.
CONTACT_LISTS = ("addresses", "phone_numbers", "company")


def contact_body(customer: Customer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email_addresses": [{"email": customer.email, "field": "EMAIL1"}],
        "given_name": customer.given_name,
        "family_name": customer.family_name,
        "source_type": "IMPORT",
    }
    if customer.phone:
        body["phone_numbers"] = [{"number": customer.phone, "field": "PHONE1"}]
    if customer.company:
        body["company"] = {"company_name": customer.company}
    addresses = [
        _contact_address(addr, field)
        for addr, field in ((customer.billing_address, "BILLING"), (customer.shipping_address, "SHIPPING"))
        if addr is not None
    ]
    if addresses:
        body["addresses"] = addresses
    return body


def _contact_address(addr: Address, field: str) -> dict[str, Any]:
    # Keap v2 deprecates `region` for writes in favour of `region_code` (ISO 3166-2); a region that is none of the
    # country's subdivisions can only go as the deprecated text.
    return {
        "field": field,
        "line1": addr.line1,
        "line2": addr.line2,
        "locality": addr.locality,
        "region_code": addr.region_code,
        "region": None if addr.region_code else addr.region,
        "postal_code": addr.postal_code,
        "country_code": addr.country_code,
    }


def shipping_address(customer: Customer) -> dict[str, Any] | None:
    addr = customer.shipping_address
    if addr is None:
        return None
    return {
        "first_name": addr.first_name or customer.given_name,
        "last_name": addr.last_name or customer.family_name,
        "company": customer.company,
        "line1": addr.line1,
        "line2": addr.line2,
        "locality": addr.locality,
        # An order's AddressInformation has only `region`; Keap filters orders by `shipping_region_code` (ISO 3166-2).
        "region": addr.region_code or addr.region,
        "zip_code": addr.postal_code,
        "country_code": addr.country_code,
    }


def item_body(item: Item, product_id: str | None) -> dict[str, Any]:
    return {
        "item_type": item.type,
        "product_id": product_id,
        "quantity": item.quantity,
        "price_per_unit": item.unit_price,
        "cost_per_unit": item.unit_cost,
        "name": item.name,
        "description": item.description,
    }


def item_key(item: Item, product_id: str | None) -> tuple:
    """What identifies an order line for comparison with Keap's lines (see keap_item_key)."""
    return (item.type, product_id or item.name, item.quantity, item.unit_price, item.unit_cost or Decimal("0"))


def keap_item_key(line: dict[str, Any]) -> tuple:
    """The item_key of a line of a Keap order (GET /v2/orders/{id}): products by id, other lines by name."""
    price, cost = line.get("price_per_unit"), line.get("cost_per_unit")
    return (line.get("item_type") or "PRODUCT", (line.get("product") or {}).get("id") or line.get("name"),
            int(line.get("quantity", 0)), money(price) if price else Decimal("0"),
            money(cost) if cost else Decimal("0"))


def order_body(
    order: Order,
    contact_id: str,
    product_ids: dict[str, str],
    custom_fields: list[dict[str, Any]],
) -> dict[str, Any]:
    """POST /v2/orders with every item and custom field inline: one call creates the whole order.

    Promo codes go only to an order without explicit discount lines: Keap does not say whether it applies them on
    top of such lines (a double discount), and the lines already carry the discount the store gave."""
    discounted = any(item.type.startswith("DISCOUNT") for item in order.items)
    return {
        "contact_id": contact_id,
        "order_time": keap_time(order.order_time),
        "order_title": order.title,
        "order_type": order.order_type,
        "order_items": [item_body(item, product_ids.get(item.sku or "")) for item in order.items],
        "custom_fields": custom_fields,
        "notes": order.notes,
        "promo_codes": None if discounted else order.promo_codes or None,
        "shipping_address": shipping_address(order.customer),
    }


def payment_body(payment: Payment, order: Order) -> dict[str, Any]:
    note = " ".join(part for part in (payment.notes, payment_marker(payment)) if part)
    return {
        "payment_amount": payment.amount,
        "apply_to_commissions": False,
        "payment_method_type": payment.method,
        "payment_method_id": payment.charge_payment_method_id,
        "payment_time": keap_time(payment.paid_at or order.order_time),
        "notes": note,
    }


def subscription_body(sub: Subscription, contact_id: str, plan_id: str) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "subscription_plan_id": plan_id,
        "quantity": sub.quantity,
        "billing_amount": sub.billing_amount,
        "start_date": sub.start_date.isoformat() if sub.start_date else None,
        "auto_charge": sub.auto_charge,
        "payment_method_id": sub.charge_payment_method_id,
        # Keap's own duplicate check stays on: it is our last guard against a second identical subscription.
        "allow_duplicate": False,
    }
