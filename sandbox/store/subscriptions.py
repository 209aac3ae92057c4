"""Subscriptions to a product's plan: Keap's duplicate check, reads, lists, and invoicing every due billing cycle."""
from __future__ import annotations

import calendar
import copy
import datetime as dt

from sandbox.query import EQ_CMP, Field
from sandbox.store.core import ApiError, dollars, iso
from sandbox.store.orders import Orders

CYCLES = {"DAILY": "DAY", "WEEKLY": "WEEK", "MONTHLY": "MONTH", "YEARLY": "YEAR"}


def _add_cycle(day: dt.date, cycle: str, frequency: int) -> dt.date:
    if cycle == "DAILY":
        return day + dt.timedelta(days=frequency)
    if cycle == "WEEKLY":
        return day + dt.timedelta(weeks=frequency)
    months = frequency * (12 if cycle == "YEARLY" else 1)
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class Subscriptions(Orders):
    """`/v2/subscriptions`; invoicing a subscription creates one order per billing cycle due."""

    def _load_subscriptions(self, seed: dict) -> None:
        self.subscriptions: dict[str, dict] = {}

    def create_subscription(self, body: dict) -> dict:
        with self.lock:
            contact = self._contact_ref(body["contact_id"])
            found = self.plans.get(str(body["subscription_plan_id"]))
            if found is None:
                raise ApiError(400, f"Invalid subscription_plan_id: plan {body['subscription_plan_id']} does not "
                                    "exist")
            product_id, plan = found
            today = self.now().date()
            start = dt.date.fromisoformat(body["start_date"]) if body.get("start_date") else today
            if start < today:
                raise ApiError(400, f"Invalid start_date {start.isoformat()}: must not be in the past "
                                    f"(today is {today.isoformat()} UTC)")
            for name in ("quantity", "max_charge_attempts", "days_between_retries"):
                if name in body and body[name] < 1:
                    raise ApiError(400, f"Invalid {name}: must be 1 or greater")
            if body.get("billing_amount", 0) < 0:
                raise ApiError(400, "Invalid billing_amount: must be 0 or greater")
            active = body.get("active", True)
            if active and not body.get("allow_duplicate") and any(
                    s["active"] and s["contact_id"] == contact["id"] and s["subscription_plan_id"] == plan["id"]
                    for s in self.subscriptions.values()):
                # Keap's duplicate check; answered like its other validation failures (400).
                raise ApiError(400, f"Duplicate subscription: contact {contact['id']} already has an active "
                                    f"subscription to plan {plan['id']} (set allow_duplicate to create another)")
            auto_charge = body.get("auto_charge", True)
            method_id = body.get("payment_method_id")
            if method_id and self.payment_methods.get(str(method_id), {}).get("contact_id") != contact["id"]:
                raise ApiError(400, f"Invalid payment_method_id: {method_id} does not belong to contact "
                                    f"{contact['id']}")
            if not method_id and auto_charge:
                cards = [m for m in self.payment_methods.values() if m["contact_id"] == contact["id"]]
                method_id = cards[-1]["payment_method_id"] if cards else None
            subscription = {
                "id": self._new_id("subscription"), "contact_id": contact["id"], "product_id": product_id,
                "subscription_plan_id": plan["id"], "quantity": body.get("quantity", 1), "active": active,
                # Held in currency units; the billing-cents reading reads (and answers) it in cents.
                "billing_amount": (body["billing_amount"] / (100 if self.reading("billing-cents") else 1)
                                   if "billing_amount" in body else dollars(plan["price_cents"])),
                "auto_charge": auto_charge, "billing_cycle": CYCLES[plan["billing_cycle"]],
                "billing_frequency": plan.get("billing_frequency", 1), "start_date": start.isoformat(),
                "next_bill_date": start.isoformat(), "allow_tax": body.get("allow_tax", False),
                "modification_time": iso(self.now()),
                "custom_fields": self._custom_values("SUBSCRIPTION", body.get("custom_fields") or []),
                **{k: copy.deepcopy(body[k]) for k in ("max_charge_attempts", "days_between_retries",
                                                       "lead_affiliate_id", "sale_affiliate_id", "promo_code",
                                                       "shipping_option_id", "reason_stopped", "shipping_address")
                   if k in body}}
            if method_id:
                subscription["payment_method_id"] = str(method_id)
            self.subscriptions[subscription["id"]] = subscription
            return self.subscription_view(subscription)

    def subscription_view(self, subscription: dict, listed: bool = False) -> dict:
        view = copy.deepcopy(subscription)
        view["custom_fields"] = [{"id": k, "content": v} for k, v in subscription["custom_fields"].items()]
        if self.reading("billing-cents"):
            view["billing_amount"] = round(subscription["billing_amount"] * 100)
        if listed and self.reading("no-subscription-fields"):
            del view["custom_fields"]
        return view

    def get_subscription(self, subscription_id: str) -> dict:
        with self.lock:
            return self.subscription_view(self._get(self.subscriptions, subscription_id, "Subscription"))

    def list_subscriptions(self, query: dict) -> dict:
        with self.lock:
            page, token = self._list(self.subscriptions.values(), query, {
                "contact_id": Field("id", lambda s: s["contact_id"]),
                "subscription_plan_id": Field("id", lambda s: s["subscription_plan_id"]),
                "status": Field("text", lambda s: "Active" if s["active"] else "Inactive"),
                "id": Field("id", lambda s: s["id"], ops=EQ_CMP), "ids": Field("ids", lambda s: s["id"]),
                "subscription_plan_ids": Field("ids", lambda s: s["subscription_plan_id"]),
                "billing_amount": Field("number", lambda s: s["billing_amount"], ops=EQ_CMP)},
                {"id": lambda s: int(s["id"]), "contact_id": lambda s: int(s["contact_id"]),
                 "subscription_plan_id": lambda s: int(s["subscription_plan_id"]),
                 "modification_time": lambda s: s["modification_time"]},
                custom=lambda name: self._custom_field("SUBSCRIPTION", name))
            return self._page("subscriptions", [self.subscription_view(s, listed=True) for s in page], token)

    def invoice_subscription(self, subscription_id: str) -> dict:
        """Bill every due cycle (one order each) and return the most recent order."""
        with self.lock:
            sub = self._get(self.subscriptions, subscription_id, "Subscription")
            if not sub["active"]:
                raise ApiError(400, f"Subscription {subscription_id} is not active")
            product_id, plan = self.plans[sub["subscription_plan_id"]]
            today, latest = self.now().date(), None
            while dt.date.fromisoformat(sub["next_bill_date"]) <= today:
                bill_date = dt.date.fromisoformat(sub["next_bill_date"])
                latest = self.create_order({
                    "contact_id": sub["contact_id"], "order_type": "OFFLINE",
                    "order_title": f"{self.products[product_id]['name']} subscription",
                    "order_time": f"{bill_date.isoformat()}T00:00:00Z",
                    "order_items": [{"item_type": "SUBSCRIPTION", "product_id": product_id, "quantity": sub["quantity"],
                                     "subscription_plan_id": plan["id"], "price_per_unit": sub["billing_amount"]}],
                }, source_type="INVOICE")
                self.orders[latest["id"]]["items"][0]["subscription_id"] = sub["id"]
                sub["last_bill_date"] = bill_date.isoformat()
                sub["next_bill_date"] = _add_cycle(bill_date, plan["billing_cycle"],
                                                   plan.get("billing_frequency", 1)).isoformat()
                sub["modification_time"] = iso(self.now())
            if latest is None:
                raise ApiError(400, f"Subscription {subscription_id} has no billing cycle due (next bill date "
                                    f"{sub['next_bill_date']})")
            return self.get_order(latest["id"])
