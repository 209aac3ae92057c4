"""Keap's REST v2 operations the sandbox serves: (method, path template) → the Store call that answers it."""
from __future__ import annotations

from typing import Callable

from sandbox.faults import Faults
from sandbox.spec import Spec
from sandbox.store import ApiError, Store

V2 = "/rest/v2"
Route = Callable[[dict, dict, object], tuple]  # (path params, query, JSON body) -> (status, body)


def route_table(s: Store, faults: Faults, spec: Spec) -> dict[tuple[str, str], Route]:
    """Every implemented operation; faults are read per call (a fault set later applies to the next call)."""
    return {
        ("POST", f"{V2}/contacts"): lambda p, q, b: s.upsert_contact(b, _enum(q, "duplicate_option", (
            "Email", "EmailAndName", "EmailAndNameAndCompany"))),
        ("GET", f"{V2}/contacts"): lambda p, q, b: (200, s.list_contacts(q)),
        ("GET", f"{V2}/contacts/{{contact_id}}"): lambda p, q, b: (200, s.get_contact(p["contact_id"])),
        ("PATCH", f"{V2}/contacts/{{contact_id}}"): lambda p, q, b: (200, s.update_contact(
            p["contact_id"], b, update_mask(spec, q, "PATCH", f"{V2}/contacts/{{contact_id}}"))),
        ("GET", f"{V2}/contacts/{{contact_id}}/paymentMethods"): lambda p, q, b: (
            200, s.list_payment_methods(p["contact_id"], q)),
        ("GET", f"{V2}/products"): lambda p, q, b: (200, s.list_products(q)),
        ("POST", f"{V2}/products"): lambda p, q, b: (201, s.create_product(b)),
        ("GET", f"{V2}/products/{{product_id}}"): lambda p, q, b: (200, s.get_product(p["product_id"])),
        ("POST", f"{V2}/orders"): lambda p, q, b: (201, _without_total(s.create_order(b), faults)),
        ("GET", f"{V2}/orders"): lambda p, q, b: (200, s.list_orders(q)),
        ("GET", f"{V2}/orders/{{order_id}}"): lambda p, q, b: (200, s.get_order(p["order_id"])),
        ("PATCH", f"{V2}/orders/{{order_id}}"): lambda p, q, b: (200, s.update_order(
            p["order_id"], b, update_mask(spec, q, "PATCH", f"{V2}/orders/{{order_id}}"))),
        ("DELETE", f"{V2}/orders/{{order_id}}"): lambda p, q, b: (204, s.delete_order(p["order_id"])),
        ("POST", f"{V2}/orders/{{order_id}}/items"): lambda p, q, b: (201, s.add_item(p["order_id"], b)),
        ("POST", f"{V2}/orders/{{order_id}}/payments"): lambda p, q, b: (201, s.create_payment(
            p["order_id"], b, declined=faults.declined())),
        ("GET", f"{V2}/orders/{{order_id}}/payments"): lambda p, q, b: (200, s.list_payments(p["order_id"], q)),
        ("GET", f"{V2}/sales/transactions"): lambda p, q, b: (200, s.list_transactions(q)),
        ("GET", f"{V2}/orders/model"): lambda p, q, b: (200, s.custom_model("ORDER")),
        ("POST", f"{V2}/orders/model/customFields"): lambda p, q, b: (201, s.create_custom_field("ORDER", b)),
        ("GET", f"{V2}/subscriptions/model"): lambda p, q, b: (200, s.custom_model("SUBSCRIPTION")),
        ("POST", f"{V2}/subscriptions/model/customFields"): lambda p, q, b: (
            201, s.create_custom_field("SUBSCRIPTION", b)),
        ("POST", f"{V2}/subscriptions"): lambda p, q, b: (201, s.create_subscription(b)),
        ("GET", f"{V2}/subscriptions"): lambda p, q, b: (200, s.list_subscriptions(q)),
        ("GET", f"{V2}/subscriptions/{{subscription_id}}"): lambda p, q, b: (
            200, s.get_subscription(p["subscription_id"])),
        ("POST", f"{V2}/subscriptions/{{subscription_id}}:invoice"): lambda p, q, b: (
            200, s.invoice_subscription(p["subscription_id"])),
    }


def _without_total(order: dict, faults: Faults) -> dict:
    if faults.reading("no-create-total"):
        order.pop("total", None)
    return order


def _enum(query: dict, name: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"Invalid {name} {value!r}: use one of {', '.join(allowed)}")
    return value


def update_mask(spec: Spec, query: dict, method: str, template: str) -> list[str]:
    """The `update_mask` query values (repeated or comma-separated), each checked against the spec's enum."""
    raw = query.get("update_mask") or []
    mask = [part.strip() for value in (raw if isinstance(raw, list) else [raw]) for part in value.split(",")
            if part.strip()]
    for param in (spec.operation(method, template) or {}).get("parameters", []):
        if param["name"] == "update_mask":
            allowed = param["schema"]["items"]["enum"]
            unknown = [m for m in mask if m not in allowed]
            if unknown:
                raise ApiError(400, f"Invalid update_mask value(s) {unknown}; allowed: {', '.join(allowed)}")
    return mask
