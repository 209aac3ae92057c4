"""Step 5: create each subscription not yet created (plan chosen by SKU + billing cycle), invoicing it when due.

Each subscription carries the order's external id in a subscription custom field: that is how a lost answer is
reconciled, and how a subscription of this order is told apart from the same plan bought in another order.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

from worker.contract import Order
from worker.keap import KeapValidationError, money
from worker.steps import payloads, readings, resolve
from worker.steps.base import OrderRejected, Results, StepContext, load, write_once

log = logging.getLogger(__name__)


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    subs = order.subscriptions
    if not subs:
        return
    if any(f"subscription:{i}" not in state.results for i in range(len(subs))):
        contact_id = state.results.get("contact_id") or resolve.contact_id(ctx, order)
        field = resolve.custom_fields(ctx, order, "subscriptions", [ctx.external_id_label])[ctx.external_id_label]
        for i in range(len(subs)):
            if f"subscription:{i}" in state.results:
                continue
            plan_id = resolve.plan_id(ctx, order, i)
            write_once(ctx, state, f"subscription:{i}",
                       find=lambda i=i, plan_id=plan_id: _find(ctx, order, i, contact_id, plan_id, field),
                       write=lambda i=i, plan_id=plan_id: _create(ctx, order, i, contact_id, plan_id, field))
    for i, sub in enumerate(subs):
        _check_amount(ctx, order, state.results, i)
        # Invoicing is a separate, repeatable call (Keap answers 400 once nothing is due), so it is done after the
        # subscription id is safely recorded.
        if f"invoice:{i}" not in state.results and _due(sub):
            invoice = _invoice(ctx, external_id, state.results[f"subscription:{i}"])
            ctx.ledger.record(external_id, {f"invoice:{i}": str((invoice or {}).get("id", "none"))})
            _check_invoice(order, i, invoice, state.results[f"subscription:{i}"], _expected(ctx, order, i))


def _create(ctx: StepContext, order: Order, i: int, contact_id: str, plan_id: str, field: dict) -> Results:
    body = payloads.subscription_body(order.subscriptions[i], contact_id, plan_id)
    want, price, unit = _expected(ctx, order, i), _plan_price(ctx, order, i), _unit(ctx)
    if want == price:
        body.pop("billing_amount")  # Keap's default is the plan price: no unit to get wrong
    elif unit == "cents":
        body["billing_amount"] = int(want * 100)
    elif unit is None:
        raise OrderRejected(
            f"order {order.external_id}: subscriptions[{i}].billing_amount: {want} is not the plan's price "
            f"({price}), and Keap does not document whether billing_amount is in currency units or cents; run "
            f"`keap-orders doctor --probe` to find out how this account reads it, then run "
            f"`keap-orders retry {order.external_id}` (nothing was created for this subscription)"
        )
    body["custom_fields"] = [{"id": field["id"], "content": order.external_id}]
    try:
        created = ctx.keap.subscriptions.create(body)
    except KeapValidationError as exc:
        if "duplicate" not in exc.message.lower():
            raise OrderRejected(
                f"order {order.external_id}: subscriptions[{i}]: Keap refused the subscription ({exc.message}); "
                f"fix the subscription in the order, then run `keap-orders retry {order.external_id}`"
            ) from exc
        # Keap's duplicate check: the contact has this plan already. Ours only if it carries this order's id;
        # otherwise it was bought in another order, and this order's subscription is another subscription.
        mine = _find(ctx, order, i, contact_id, plan_id, field)
        if mine is not None:
            return mine
        log.info("order %s: the customer has plan %s from another order; creating this order's own",
                 order.external_id, plan_id)
        created = ctx.keap.subscriptions.create({**body, "allow_duplicate": True})
    return {f"subscription:{i}": str(created["id"]), f"subamount:{i}": _billed(ctx, order, i, created)}


def _find(ctx: StepContext, order: Order, i: int, contact_id: str, plan_id: str, field: dict) -> Results | None:
    """This order's subscription to the plan: same contact and plan, and this order's external id, exactly."""
    found = ctx.keap.subscriptions.find(contact_id=contact_id, subscription_plan_id=plan_id)
    # A list without custom fields cannot tell this order's subscription from another's: read each one.
    found = [s if "custom_fields" in s else ctx.keap.subscriptions.get(s["id"]) for s in found]
    blind = [str(s["id"]) for s in found if "custom_fields" not in s]
    if blind:
        raise OrderRejected(
            f"order {order.external_id}: subscriptions[{i}]: Keap returns subscription(s) {', '.join(blind)} of plan "
            f"{plan_id} for this customer without custom fields, so it cannot be told whether one is this order's "
            f"(an earlier answer was lost). Check in Keap: if one is, write {order.external_id} into its "
            f"{ctx.external_id_label!r} field; then run `keap-orders retry {order.external_id}`"
        )
    mine = [s for s in found if any(str(cf.get("id")) == field["id"] and cf.get("content") == order.external_id
                                    for cf in s.get("custom_fields") or [])]
    if len(mine) > 1:
        raise OrderRejected(
            f"order {order.external_id}: subscriptions[{i}]: Keap has {len(mine)} subscriptions of plan {plan_id} "
            f"for this order ({', '.join(str(s['id']) for s in mine)}); deactivate the extra ones in Keap, then run "
            f"`keap-orders retry {order.external_id}`"
        )
    if not mine:
        return None
    return {f"subscription:{i}": str(mine[0]["id"]), f"subamount:{i}": _billed(ctx, order, i, mine[0])}


def _expected(ctx: StepContext, order: Order, i: int) -> Decimal:
    sub = order.subscriptions[i]
    return sub.billing_amount if sub.billing_amount is not None else _plan_price(ctx, order, i)


def _plan_price(ctx: StepContext, order: Order, i: int) -> Decimal:
    price = resolve.plan(ctx, order, i).get("plan_price")
    return money(price) if isinstance(price, dict) else Decimal(str(price or 0))


def _unit(ctx: StepContext) -> str | None:
    return readings.get(ctx.ledger, "billing_amount_unit")


def _billed(ctx: StepContext, order: Order, i: int, subscription: dict) -> str:
    """What Keap says the subscription bills, in currency units. Unprobed, only a subscription at its plan's price
    was created, and that price in either unit is that price."""
    raw = subscription.get("billing_amount")
    if raw is None:
        return ""
    value, unit, want = Decimal(str(raw)), _unit(ctx), _expected(ctx, order, i)
    if unit == "cents" or (unit is None and value != want and value == want * 100):
        value = value / 100
    return str(value)


def _check_amount(ctx: StepContext, order: Order, results: dict[str, str], i: int) -> None:
    """The spec does not say whether billing_amount is in cents or currency units: read it back (in the unit the
    probe found) and stop the order on any difference rather than bill a customer 100 times too much or little."""
    want = _expected(ctx, order, i)
    if results.get(f"subamount:{i}") in (None, "") or Decimal(results[f"subamount:{i}"]) == want:
        return
    sub_id = results[f"subscription:{i}"]
    current = _billed(ctx, order, i, ctx.keap.subscriptions.get(sub_id))  # an operator may have corrected it
    ctx.ledger.record(order.external_id, {f"subamount:{i}": current})
    if current and Decimal(current) == want:
        return
    raise OrderRejected(
        f"order {order.external_id}: subscriptions[{i}]: Keap subscription {sub_id} bills {current}, the order "
        f"says {want}; correct the billing amount of the subscription in Keap, then run "
        f"`keap-orders retry {order.external_id}`"
    )


def _check_invoice(order: Order, i: int, invoice: dict | None, sub_id: str, amount: Decimal) -> None:
    """The first invoice's total is unambiguous (a CurrencyValue): it must be the billing amount times the
    quantity, or nothing more is done for the order."""
    sub = order.subscriptions[i]
    if not invoice or not isinstance(invoice.get("total"), dict):
        return
    total, want = money(invoice["total"]), amount * sub.quantity
    if total != want:
        raise OrderRejected(
            f"order {order.external_id}: subscriptions[{i}]: Keap invoiced subscription "
            f"{sub_id} for {total} (Keap order {invoice.get('id')}), the order says {want}; "
            f"correct the subscription's billing amount and that invoice in Keap, then run "
            f"`keap-orders retry {order.external_id}`"
        )


def _invoice(ctx: StepContext, external_id: str, subscription_id: str) -> dict | None:
    """Invoice the cycle that is due now; Keap answers 400 when nothing is due, which is not a failure."""
    try:
        return ctx.keap.subscriptions.invoice(subscription_id)
    except KeapValidationError as exc:
        log.info("order %s: subscription %s not invoiced: %s", external_id, subscription_id, exc.message)
        return {"id": "not-due"}


def _due(sub) -> bool:
    """A subscription starting today (Keap's default) has a cycle due now, so Keap should invoice it."""
    today = datetime.now(timezone.utc).date()
    return sub.start_date is None or sub.start_date <= today
