"""Find the Keap ids an order refers to: contact, products (with plans), order custom fields.

Results are cached in Redis for every worker, so a returning customer or a known SKU costs no Keap call.
Cache keys for contacts are hashes of the email, so no customer data appears in Redis key names.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Iterable

from worker.messages import Order
from worker.steps import payloads
from worker.steps.base import OrderRejected, StepContext

log = logging.getLogger(__name__)


def contact_id(ctx: StepContext, order: Order) -> str:
    """The customer's contact: found by email, created only when missing, never overwritten."""
    email = order.customer.email.strip().lower()
    key = hashlib.sha256(email.encode()).hexdigest()
    cached = ctx.ledger.cache_get("contacts", key)
    if cached:
        return cached
    # One worker at a time per customer, so two orders of a new customer don't both create it.
    with ctx.ledger.lock(f"contact:{key}"):
        cached = ctx.ledger.cache_get("contacts", key)
        if cached:
            return cached
        found = ctx.keap.contacts.find_by_email(email)
        if found:
            # An existing contact keeps its data: an old order's address must not replace a newer one.
            cid = str(found["id"])
        else:
            created = ctx.keap.contacts.create(payloads.contact_body(order.customer), duplicate_option="Email")
            cid = str(created["id"])
            log.info("order %s: created contact %s", order.external_id, cid)
        ctx.ledger.cache_set("contacts", key, cid)
        return cid


def product(ctx: StepContext, order: Order, sku: str, field: str) -> dict[str, Any]:
    """The Keap product for a SKU (id and subscription plans); unknown SKUs are the operator's to fix."""
    cached = ctx.ledger.cache_get("products", sku)
    if cached:
        return json.loads(cached)
    found = ctx.keap.products.find_by_sku(sku)
    if not found:
        raise OrderRejected(
            f"order {order.external_id}: {field}: SKU {sku!r} is not a product in Keap; create a product with "
            f"that SKU in Keap (or correct the SKU in the order), then run `keap-orders retry {order.external_id}`"
        )
    slim = {"id": str(found["id"]), "plans": found.get("subscription_plans") or []}
    ctx.ledger.cache_set("products", sku, json.dumps(slim))
    return slim


def product_ids(ctx: StepContext, order: Order) -> dict[str, str]:
    return {
        item.sku: product(ctx, order, item.sku, f"items[{i}].sku")["id"]
        for i, item in enumerate(order.items)
        if item.sku
    }


def plan_id(ctx: StepContext, order: Order, index: int) -> str:
    sub = order.subscriptions[index]
    field = f"subscriptions[{index}]"
    plans = product(ctx, order, sub.sku, f"{field}.sku")["plans"]
    for plan in plans:
        if plan.get("billing_cycle") == sub.billing_cycle and plan.get("active", True):
            return str(plan["id"])
    cycles = sorted({p.get("billing_cycle") for p in plans if p.get("billing_cycle")}) or ["none"]
    raise OrderRejected(
        f"order {order.external_id}: {field}.billing_cycle: product {sub.sku!r} has no active {sub.billing_cycle} "
        f"subscription plan in Keap (it has: {', '.join(cycles)}); add the plan in Keap or change billing_cycle, "
        f"then run `keap-orders retry {order.external_id}`"
    )


def order_fields(ctx: StepContext, order: Order, labels: Iterable[str]) -> dict[str, dict[str, str]]:
    """label -> {"id", "field_name"} of order custom fields; missing ones are created (under a lock)."""
    labels = list(dict.fromkeys(labels))
    found = _cached_fields(ctx, labels)
    missing = [label for label in labels if label not in found]
    if not missing:
        return found
    with ctx.ledger.lock("order-custom-fields"):
        _refresh_fields(ctx)
        found = _cached_fields(ctx, labels)
        for label in (label for label in labels if label not in found):
            if label != ctx.external_id_label and not ctx.create_missing_custom_fields:
                raise OrderRejected(
                    f"order {order.external_id}: custom_fields: Keap has no order custom field labelled {label!r}; "
                    f"create it in Keap (or set CREATE_MISSING_CUSTOM_FIELDS=true), then run "
                    f"`keap-orders retry {order.external_id}`"
                )
            created = ctx.keap.orders.create_custom_field(label, "TEXT")
            log.info("created order custom field %s (%s)", created.get("id"), created.get("field_name"))
            _cache_field(ctx, created)
            found[label] = {"id": str(created["id"]), "field_name": created["field_name"]}
    return found


def _cached_fields(ctx: StepContext, labels: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for label in labels:
        raw = ctx.ledger.cache_get("order-fields", label)
        if raw:
            out[label] = json.loads(raw)
    return out


def _refresh_fields(ctx: StepContext) -> None:
    for meta in ctx.keap.orders.get_model().get("custom_fields") or []:
        _cache_field(ctx, meta)


def _cache_field(ctx: StepContext, meta: dict[str, Any]) -> None:
    ctx.ledger.cache_set(
        "order-fields", meta["label"], json.dumps({"id": str(meta["id"]), "field_name": meta["field_name"]})
    )
