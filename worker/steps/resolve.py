"""Find the Keap ids an order refers to: contact, products (with plans), order and subscription custom fields.

Results are cached in Redis for every worker, so a returning customer or a known SKU costs no Keap call.
Cache keys for contacts are hashes of the email, so no customer data appears in Redis key names.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Iterable

from worker.contract import Order
from worker.keap import KeapError, KeapOutcomeUnknown
from worker.steps import payloads, readings
from worker.steps.base import OrderRejected, Settle, StepContext

log = logging.getLogger(__name__)


def contact_id(ctx: StepContext, order: Order) -> str:
    """The customer's contact: found by email (compared ignoring case), created only when missing, never
    overwritten: address and phone lists go only to a contact this step created (Keap replaces lists whole)."""
    email = order.customer.email.strip()
    key = hashlib.sha256(email.lower().encode()).hexdigest()
    cached = ctx.ledger.cache_get("contacts", key)
    if cached:
        return cached
    # One worker at a time per customer, so two orders of a new customer don't both create it.
    with ctx.ledger.lease(f"contact:{key}", ctx.lease_seconds, wait=ctx.lease_seconds * 2):
        cached = ctx.ledger.cache_get("contacts", key)
        if cached:
            return cached
        found = _find_contact(ctx, email)
        unlisted = ctx.ledger.cache_get("contacts-unlisted", key)
        if found and str(found["id"]) == unlisted:
            _add_lists(ctx, order, unlisted, key)  # created by an earlier attempt that stopped before its lists
        if found:
            # An existing contact keeps its data: an old order's address must not replace a newer one.
            cid = str(found["id"])
        else:
            cid = _create_contact(ctx, order, key)
        ctx.ledger.cache_set("contacts", key, cid)
        return cid


def _find_contact(ctx: StepContext, email: str) -> dict | None:
    """Keap's `email==` may be case-sensitive: unless the probe found it is not, a miss on the lower-case email is
    tried again with the email as the order spells it (one more call, only for a mixed-case email)."""
    found = ctx.keap.contacts.find_by_email(email.lower())
    if found is None and email != email.lower() and readings.get(ctx.ledger, "email_search") != "case-insensitive":
        found = ctx.keap.contacts.find_by_email(email)
    return found


def _create_contact(ctx: StepContext, order: Order, key: str) -> str:
    """Create the contact; Keap's duplicate check (by email, ignoring case) may land on a contact our search missed:
    that is detected by its 200 answer, and only then would lists sent with it have replaced the contact's. So the
    lists go with the create only where the probe found the search ignores case; otherwise they follow in a PATCH
    once Keap answered 201 (one more call per new customer with an address, phone or company)."""
    body = payloads.contact_body(order.customer)
    trusted = readings.get(ctx.ledger, "email_search") == "case-insensitive"
    lists = {} if trusted else {k: body.pop(k) for k in payloads.CONTACT_LISTS if k in body}
    created, contact = ctx.keap.contacts.upsert(body, duplicate_option="Email")
    cid = str(contact["id"])
    if not created:
        ctx.ledger.cache_set("contacts", key, cid)  # it is the customer's contact: later orders use it as found
        ctx.ledger.record(order.external_id, {"contact_id": cid})
        sent = "its name, email, addresses and phones" if trusted else "its name and email"
        raise OrderRejected(
            f"order {order.external_id}: Keap's email search did not find the customer, but creating the contact "
            f"updated existing Keap contact {cid} (same email in other letter case): {sent} were set to this "
            f"order's. Check contact {cid} in Keap and correct it if needed, then run "
            f"`keap-orders retry {order.external_id}` (it uses contact {cid} and changes nothing more on it)"
        )
    log.info("order %s: created contact %s", order.external_id, cid)
    if lists:
        ctx.ledger.cache_set("contacts-unlisted", key, cid)
        _add_lists(ctx, order, cid, key)
    return cid


def _add_lists(ctx: StepContext, order: Order, cid: str, key: str) -> None:
    """The addresses, phones and company of a contact this step created (a PATCH is safe to repeat)."""
    body = payloads.contact_body(order.customer)
    lists = {k: body[k] for k in payloads.CONTACT_LISTS if k in body}
    if lists:
        ctx.keap.contacts.update(cid, lists, update_mask=list(lists))
    ctx.ledger.cache_delete("contacts-unlisted", key)


def find_product(ctx: StepContext, sku: str, memo: dict[str, dict | None] | None = None) -> dict[str, Any] | None:
    """The Keap product for a SKU as {"id", "plans"} (cached in Redis for every worker), or None if Keap has none.

    `memo` also remembers misses, for a caller that checks many orders at once (a dry run) and must not ask
    Keap again for every order with the same unknown SKU; the shared cache never holds a miss.
    """
    if memo is not None and sku in memo:
        return memo[sku]
    cached = ctx.ledger.cache_get("products", sku)
    if cached:
        return json.loads(cached)
    found = ctx.keap.products.find_by_sku(sku)
    slim = {"id": str(found["id"]), "plans": found.get("subscription_plans") or []} if found else None
    if slim:
        ctx.ledger.cache_set("products", sku, json.dumps(slim))
    if memo is not None:
        memo[sku] = slim
    return slim


def product(ctx: StepContext, order: Order, sku: str, field: str,
            memo: dict[str, dict | None] | None = None) -> dict[str, Any]:
    """The Keap product for a SKU (id and subscription plans); unknown SKUs are the operator's to fix."""
    found = find_product(ctx, sku, memo)
    if found is None:
        raise OrderRejected(
            f"order {order.external_id}: {field}: SKU {sku!r} is not a product in Keap; create a product with "
            f"that SKU in Keap (or correct the SKU in the order), then run `keap-orders retry {order.external_id}`"
        )
    return found


def product_ids(ctx: StepContext, order: Order) -> dict[str, str]:
    return {
        item.sku: product(ctx, order, item.sku, f"items[{i}].sku")["id"]
        for i, item in enumerate(order.items)
        if item.sku
    }


def plan_id(ctx: StepContext, order: Order, index: int, memo: dict[str, dict | None] | None = None) -> str:
    return str(plan(ctx, order, index, memo)["id"])


def plan(ctx: StepContext, order: Order, index: int, memo: dict[str, dict | None] | None = None) -> dict[str, Any]:
    """The Keap plan of a subscription (its `id`, and `plan_price` as Keap's CurrencyValue)."""
    sub = order.subscriptions[index]
    field = f"subscriptions[{index}]"
    plans = product(ctx, order, sub.sku, f"{field}.sku", memo)["plans"]
    for found in plans:
        if found.get("billing_cycle") == sub.billing_cycle and found.get("active", True):
            return found
    cycles = sorted({p.get("billing_cycle") for p in plans if p.get("billing_cycle")}) or ["none"]
    raise OrderRejected(
        f"order {order.external_id}: {field}.billing_cycle: product {sub.sku!r} has no active {sub.billing_cycle} "
        f"subscription plan in Keap (it has: {', '.join(cycles)}); add the plan in Keap or change billing_cycle, "
        f"then run `keap-orders retry {order.external_id}`"
    )


def problems(ctx: StepContext, order: Order, payment_types: set[str],
             memo: dict[str, dict | None] | None = None) -> list[str]:
    """Everything the steps would refuse about this order's SKUs, plans and payment methods, found without
    writing to Keap (dry run, doctor). Keap's API cannot list Manual Payment Types, hence `payment_types`."""
    found = []
    for i, item in enumerate(order.items):
        if item.sku:
            try:
                product(ctx, order, item.sku, f"items[{i}].sku", memo)
            except OrderRejected as exc:
                found.append(_before_import(exc))
    for i in range(len(order.subscriptions)):
        try:
            plan_id(ctx, order, i, memo)
        except OrderRejected as exc:
            found.append(_before_import(exc))
    for i, payment in enumerate(order.payments):
        if payment.method and payment.method not in payment_types:
            found.append(f"order {order.external_id}: payments[{i}].method: {payment.method!r} is not one of the "
                         f"manual payment types {sorted(payment_types)}; add it in Keap (Ecommerce settings > "
                         f"Orders) and to MANUAL_PAYMENT_TYPES, or change the order")
    return found


def _before_import(exc: OrderRejected) -> str:
    # Nothing was sent yet: the fix is to the file or to Keap, not a `retry` of an order that does not exist.
    return str(exc).split(", then run `keap-orders retry")[0]


def order_fields(ctx: StepContext, order: Order, labels: Iterable[str]) -> dict[str, dict[str, str]]:
    """label -> {"id", "field_name"} of order custom fields; missing ones are created."""
    return custom_fields(ctx, order, "orders", labels)


def custom_fields(ctx: StepContext, order: Order, model: str, labels: Iterable[str]) -> dict[str, dict[str, str]]:
    """label -> {"id", "field_name"} of the custom fields of Keap's `model` ("orders" or "subscriptions");
    missing ones are created, one worker at a time, and only once (a field created twice would split values)."""
    labels = list(dict.fromkeys(labels))
    found = _cached_fields(ctx, model, labels)
    if len(found) == len(labels):
        return found
    resource = getattr(ctx.keap, model)
    with ctx.ledger.lease(f"{model}-custom-fields", ctx.lease_seconds, wait=ctx.lease_seconds * 2):
        for meta in resource.get_model().get("custom_fields") or []:
            _cache_field(ctx, model, meta)
        found = _cached_fields(ctx, model, labels)
        for label in (label for label in labels if label not in found):
            if label != ctx.external_id_label and not ctx.create_missing_custom_fields:
                raise OrderRejected(
                    f"order {order.external_id}: custom_fields: Keap has no order custom field labelled {label!r}; "
                    f"create it in Keap (or set CREATE_MISSING_CUSTOM_FIELDS=true), then run "
                    f"`keap-orders retry {order.external_id}`"
                )
            found[label] = _create_field(ctx, model, resource, label)
    return found


def _create_field(ctx: StepContext, model: str, resource, label: str) -> dict[str, str]:
    # Keap has no idempotency key here either: after an unanswered create, wait out the settle time, then the
    # refreshed model above shows the field if it landed.
    intents = f"{model}-field-intents"
    sent_at = ctx.ledger.cache_get(intents, label)
    now = ctx.ledger.now()
    if sent_at and now < float(sent_at) + ctx.settle_seconds:
        raise Settle(float(sent_at) + ctx.settle_seconds, f"an earlier creation of the {model} custom field may "
                                                          "still land in Keap")
    ctx.ledger.cache_set(intents, label, repr(now))
    try:
        created = resource.create_custom_field(label, "TEXT")
    except KeapOutcomeUnknown:
        raise
    except KeapError:
        ctx.ledger.cache_delete(intents, label)
        raise
    ctx.ledger.cache_delete(intents, label)
    log.info("created %s custom field %s (%s)", model, created.get("id"), created.get("field_name"))
    _cache_field(ctx, model, created)
    return {"id": str(created["id"]), "field_name": created["field_name"]}


def _cached_fields(ctx: StepContext, model: str, labels: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for label in labels:
        raw = ctx.ledger.cache_get(f"{model}-fields", label)
        if raw:
            out[label] = json.loads(raw)
    return out


def _cache_field(ctx: StepContext, model: str, meta: dict[str, Any]) -> None:
    ctx.ledger.cache_set(
        f"{model}-fields", meta["label"], json.dumps({"id": str(meta["id"]), "field_name": meta["field_name"]})
    )
