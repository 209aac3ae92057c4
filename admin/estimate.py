"""How many Keap calls a file of orders will need, and how long the backfill takes at the current limits.

The count follows what the steps do (worker/steps/), as `bench/calls_per_order.py` measures it: a typical order
with one payment takes 4 calls for a customer new to Keap and 2 for a returning one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from producers.sources import read_file
from producers.sources.base import ReadOptions
from worker.contract import Order

HOW = ("counted as the steps make them, at most: per order the contact looked up and created the first time its "
       "email appears in the file (2, +1 for its address and phones until `doctor --probe` found Keap's email search "
       "ignores case; 1 if Keap already has it), the order with its items and custom fields (1), 1 per payment "
       "(+1 to confirm a stored-card charge), 1 per subscription (+1 invoice when it starts today, +2 when the "
       "customer has the plan already); per file 1 per distinct SKU, 1 read of the order (and subscription) custom fields and 1 per "
       "label to create")


@dataclass
class Estimate:
    orders: int = 0
    invalid: int = 0
    customers: int = 0
    per_order: int = 0  # calls of the orders themselves: contacts, orders, payments, subscriptions
    setup: int = 0  # calls made once per file: SKU lookups, the order custom fields
    _emails: set[str] = field(default_factory=set, repr=False)
    _skus: set[str] = field(default_factory=set, repr=False)
    _labels: set[str] = field(default_factory=set, repr=False)
    _plans: set[tuple] = field(default_factory=set, repr=False)

    @property
    def calls(self) -> int:
        return self.per_order + self.setup

    def add(self, order: Order, today) -> None:
        self.orders += 1
        # the order (items, custom fields inline) and each payment; a charge is confirmed in the payment list
        calls = 1 + len(order.payments) + sum(bool(p.charge_payment_method_id) for p in order.payments)
        email = order.customer.email.strip().lower()
        if email not in self._emails:  # afterwards the worker's cache knows the contact
            self._emails.add(email)
            self.customers += 1
            who = order.customer
            # unprobed, a new contact's lists follow its create in a PATCH (worker/steps/resolve.py)
            calls += 2 + bool(who.phone or who.company or who.billing_address or who.shipping_address)
        for sub in order.subscriptions:
            calls += 1 + (sub.start_date is None or sub.start_date <= today)
            plan = (email, sub.sku, sub.billing_cycle)
            if plan in self._plans:  # Keap's duplicate check refuses it, the lookup finds another order's: +2
                calls += 2
            self._plans.add(plan)
        self.per_order += calls
        # Each SKU is looked up once, then cached for every worker; the order (and subscription) custom fields are
        # read once and each missing label (the external id's too) is created once.
        skus = {i.sku for i in order.items if i.sku} | {s.sku for s in order.subscriptions}
        labels = set(order.custom_fields) | {"external id"} | ({"subscription external id"} if order.subscriptions
                                                               else set())
        self.setup += (len(skus - self._skus) + len(labels - self._labels) + (self.orders == 1)
                       + (bool(order.subscriptions) and "subscription external id" not in self._labels))
        self._skus |= skus
        self._labels |= labels


def estimate_file(path: Path, fmt: str | None = None, options: ReadOptions | None = None) -> Estimate:
    """Read the file once (streaming) and count the calls its valid orders need."""
    options = options or ReadOptions.from_settings()
    today = datetime.now(timezone.utc).date()
    estimate = Estimate()
    for row in read_file(path, fmt, options):
        if row.order is None:
            estimate.invalid += 1
        else:
            estimate.add(row.order, today)
    return estimate


def plan(estimate: Estimate, scopes: list[dict]) -> list[str]:
    """How long the calls take at the current limits (`Throttle.snapshot()`), as lines for an operator."""
    lines = [f"{estimate.orders + estimate.invalid} order(s) in the file, {estimate.invalid} invalid: the "
             f"{estimate.orders} valid one(s) ({estimate.customers} distinct customers) need about {estimate.calls:,} "
             f"Keap calls ({estimate.calls / max(estimate.orders, 1):.2f} per order)",
             f"  ({HOW})"]
    budgets = [(s["backfill_allowed"], s["backfill_allowed"] - s["day"]["backfill"], s) for s in scopes
               if s["backfill_allowed"] is not None]
    rate = min((s["calls_per_second"] for s in scopes if s["calls_per_second"]), default=0)
    if not budgets and not rate:
        return lines + ["no limit is configured (RATE_LIMITS and ACCOUNT_RATE_LIMITS off): the time depends on Keap alone"]
    per_day = min([b for b, _, _ in budgets] + ([int(rate * 86400)] if rate else []))
    left_today = max(0, min([left for _, left, _ in budgets] + ([per_day] if not budgets else [])))
    if rate:
        minutes = estimate.calls / rate / 60
        took = f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"
        lines.append(f"at {rate:.2f} calls/s the calls alone take {took} of sending")
    if budgets:
        _, _, tightest = min(budgets, key=lambda b: b[0])
        share = tightest["backfill_allowed"] / tightest["day"]["limit"]
        lines.append(f"the backfill may use {per_day:,} calls a day ({share:.0%} of {tightest['day']['limit']:,} "
                     f"per {tightest['kind']}); {left_today:,} of them are left today (UTC)")
    after_today = max(0, estimate.calls - left_today)
    days = math.ceil(after_today / max(per_day, 1))
    lines.append("fits in what is left today at the current limits" if not after_today else
                 f"about {days} more day(s) after today at the current limits (the quota resets at 00:00 UTC)")
    return lines
