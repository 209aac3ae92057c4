"""`keap-orders doctor --probe`: find out how this Keap account reads what the spec leaves open, leaving nothing behind.

It creates one draft order (deleted at once), reads existing contacts, orders, payments and subscriptions, prints
each finding and stores it in the ledger, where the workers read it (worker/steps/readings.py).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from admin.doctor import FAIL, OK, WARN, Report
from worker.keap import KeapError, KeapValidationError, money
from worker.steps import readings
from worker.steps.base import StepContext

# The sandbox's name of each reading that is not its default (`keap-orders sandbox --reading NAME`).
SANDBOX_NAMES = {("email_search", "case-sensitive"): "email-case-sensitive",
                 ("billing_amount_unit", "cents"): "billing-cents",
                 ("productless_lines", "refused"): "no-productless-lines",
                 ("promo_beside_discount_lines", "applied"): "promo-applied",
                 ("payment_list_notes", "missing"): "no-notes",
                 ("subscription_list_custom_fields", "missing"): "no-subscription-fields",
                 ("custom_field_filter", "refused"): "no-custom-field-filter",
                 ("create_answer_total", "missing"): "no-create-total"}
# What the workers do under each reading that is not the default; FAIL where they refuse to start.
ADAPTS = {"email-case-sensitive": "new contacts get their addresses and phones in a second call, after Keap "
                                  "confirmed it created them",
          "billing-cents": "subscriptions are sent and read back in cents",
          "no-productless-lines": "orders with SHIPPING/TAX/FEE/DISCOUNT lines stop before anything is created",
          "promo-applied": "promo codes are never sent beside discount lines (always so)",
          "no-notes": "a payment is matched on amount, time and method; a possible match stops for an operator",
          "no-subscription-fields": "a subscription found in a list is read on its own before it is matched",
          "no-create-total": "the order is read after its create to check its total (always so when it is missing)",
          "no-custom-field-filter": "workers refuse to start: a lost order answer could not be reconciled"}
# The draft order: a product line at 10.00 plus lines without a product; its total without promo is 11.00.
EXTRA_LINES = [{"item_type": "SHIPPING", "name": "Probe shipping", "quantity": 1, "price_per_unit": Decimal("1.00")},
               {"item_type": "TAX", "name": "Probe tax", "quantity": 1, "price_per_unit": Decimal("1.00")},
               {"item_type": "FEE", "name": "Probe fee", "quantity": 1, "price_per_unit": Decimal("1.00")},
               {"item_type": "DISCOUNT", "name": "Probe discount", "quantity": 1, "price_per_unit": Decimal("2.00")}]


def run(ctx: StepContext, report: Report, promo_code: str | None = None) -> dict[str, str | None]:
    """Probe, print each finding into `report`, store them for the workers; returns the findings."""
    findings: dict[str, str | None] = dict.fromkeys(readings.VALUES)
    contacts = ctx.keap.list_page("/v2/contacts", "contacts", page_size=20, order_by="id asc")[0]
    _email(ctx, contacts, findings, report)
    _order(ctx, contacts, findings, report, promo_code)
    _payments(ctx, findings, report)
    _subscriptions(ctx, findings, report)
    try:
        ctx.keap.transactions.page(1)
        report.add(OK, "transactions", "GET /v2/sales/transactions answers: charges are confirmed there too")
    except KeapError as exc:
        report.add(WARN, "transactions", f"GET /v2/sales/transactions does not answer ({exc}); charges are "
                                         "confirmed in the order's payment list only")
    report.add(OK, "decline answers", "not probed (it would charge a card): a charge counts only when Keap lists it "
                                      "APPROVED, whatever words its answer uses")
    for name, value in findings.items():
        tag = SANDBOX_NAMES.get((name, value))
        verdict = OK if tag is None else FAIL if tag == "no-custom-field-filter" else WARN
        detail = (f"{value} (reading {tag}: {ADAPTS[tag]})" if tag else value if value else
                  "unknown: the workers take the path that is safe under every reading")
        report.add(verdict if value else WARN, f"reading {name}", detail)
    readings.store(ctx.ledger, findings)
    report.add(OK, "stored", "the findings are in the ledger; running workers use them from their next order")
    return findings


def _email(ctx: StepContext, contacts: list[dict], findings: dict, report: Report) -> None:
    """The case rule of `email==`: an existing contact searched for with its email in the other letter case."""
    for contact in contacts:
        email = next((e.get("email") for e in contact.get("email_addresses") or [] if e.get("email")), "")
        if email.swapcase() != email:
            found = ctx.keap.contacts.find_by_email(email.swapcase())
            same = found is not None and str(found.get("id")) == str(contact["id"])
            findings["email_search"] = "case-insensitive" if same else "case-sensitive"
            return
    report.add(WARN, "email search", "no existing contact with a letter in its email to try the case rule on")


def _order(ctx: StepContext, contacts: list[dict], findings: dict, report: Report, promo: str | None) -> None:
    """One draft order with a product line and lines without a product (and the promo code), read and deleted."""
    products = [p for p in ctx.keap.products.list(page_size=20)[0] if not p.get("subscription_only")]
    if not contacts or not products:
        report.add(WARN, "draft order", "the account needs one contact and one product for the order probes")
        return
    field = _id_field(ctx)
    value = f"keap-orders-probe-{uuid.uuid4().hex[:12]}"
    body = {"contact_id": str(contacts[0]["id"]), "order_type": "OFFLINE", "order_title": "keap-orders probe",
            "order_time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "order_items": [{"item_type": "PRODUCT", "product_id": str(products[0]["id"]), "quantity": 1,
                             "price_per_unit": Decimal("10.00")}, *EXTRA_LINES],
            "custom_fields": [{"id": field["id"], "content": value}], "promo_codes": [promo] if promo else None}
    try:
        created = ctx.keap.orders.create(body)
        findings["productless_lines"] = "accepted"
    except KeapValidationError as exc:
        if "product" not in exc.message.lower():
            report.add(FAIL, "draft order", f"Keap refused the probe's order ({exc.message})")
            return
        findings["productless_lines"] = "refused"
        created = ctx.keap.orders.create({**body, "order_items": body["order_items"][:1], "promo_codes": None})
    order_id = str(created["id"])
    try:
        findings["create_answer_total"] = "present" if created.get("total") else "missing"
        total = money((created if created.get("total") else ctx.keap.orders.get(order_id))["total"])
        if promo and findings["productless_lines"] == "accepted":
            findings["promo_beside_discount_lines"] = "applied" if total < Decimal("11.00") else "ignored"
        try:
            hits = ctx.keap.orders.find_by_custom_field(field["field_name"], value)
            works = any(str(o.get("id")) == order_id for o in hits)
        except KeapValidationError:
            works = False
        findings["custom_field_filter"] = "works" if works else "refused"
    finally:
        _delete(ctx, order_id, report)


def _delete(ctx: StepContext, order_id: str, report: Report) -> None:
    try:
        ctx.keap.orders.delete(order_id)
        report.add(OK, "draft order", f"created Keap order {order_id} for the probes and deleted it")
    except KeapError as exc:
        report.add(FAIL, "draft order", f"could not delete the probe's Keap order {order_id} ({exc}); delete it in "
                                        "Keap (it has no payment)")


def _id_field(ctx: StepContext) -> dict:
    """The external-id order field (created if missing, as the first imported order would)."""
    for meta in ctx.keap.orders.get_model().get("custom_fields") or []:
        if meta.get("label") == ctx.external_id_label:
            return meta
    return ctx.keap.orders.create_custom_field(ctx.external_id_label)


def _payments(ctx: StepContext, findings: dict, report: Report) -> None:
    """Whether payment lists carry `note` (the marker of our payments): read on paid orders."""
    seen = 0
    for order in ctx.keap.orders.list(filter="paid==true", page_size=10, order_by="id desc")[0]:
        listed = ctx.keap.orders.list_payments(str(order["id"]))
        seen += len(listed)
        if any("note" in p for p in listed):
            findings["payment_list_notes"] = "listed"
            return
    if seen:
        findings["payment_list_notes"] = "missing"  # or none of them had a note: the workers never count on it
    else:
        report.add(WARN, "payment lists", "no paid order to read a payment list from")


def _subscriptions(ctx: StepContext, findings: dict, report: Report) -> None:
    """Whether subscription lists carry custom_fields, and billing_amount's unit against the plan's price (a
    CurrencyValue, unambiguous) on subscriptions that bill their plan's price."""
    subs = ctx.keap.list_page("/v2/subscriptions", "subscriptions", page_size=10, order_by="id desc")[0]
    if not subs:
        report.add(WARN, "subscriptions", "no subscription to read: list fields and billing_amount unit unknown")
        return
    findings["subscription_list_custom_fields"] = "listed" if all("custom_fields" in s for s in subs) else "missing"
    votes = set()
    for sub in subs[:5]:
        plans = ctx.keap.products.get(str(sub.get("product_id"))).get("subscription_plans") or []
        plan = next((p for p in plans if str(p.get("id")) == str(sub.get("subscription_plan_id"))), None)
        if plan is None or sub.get("billing_amount") is None or not isinstance(plan.get("plan_price"), dict):
            continue
        price, billed = money(plan["plan_price"]), Decimal(str(sub["billing_amount"]))
        if price and billed == price:
            votes.add("currency")
        elif price and billed == price * 100:
            votes.add("cents")
    if len(votes) == 1:
        findings["billing_amount_unit"] = votes.pop()
    else:
        report.add(WARN, "billing_amount unit", "no subscription billing its plan's price to compare with"
                   if not votes else "subscriptions disagree; check them in Keap")
