"""Step 5: create each subscription not yet created (plan chosen by SKU + billing cycle), invoicing it when due.

Each subscription carries the order's external id in a subscription custom field: that is how a lost answer is
reconciled, and how a subscription of this order is told apart from the same plan bought in another order.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

from worker.contract import Order
from worker.keap import KeapValidationError
from worker.steps import payloads, resolve
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
            plan_id = resolve.plan_id(ctx, order, i)
            write_once(ctx, state, f"subscription:{i}",
                       find=lambda i=i, plan_id=plan_id: _find(ctx, order, i, contact_id, plan_id, field),
                       write=lambda i=i, plan_id=plan_id: _create(ctx, order, i, contact_id, plan_id, field))
    for i, sub in enumerate(subs):
        _check_amount(ctx, order, state.results, i)
        # Invoicing is a separate, repeatable call (Keap answers 400 once nothing is due), so it is done after the
        # subscription id is safely recorded.
        if f"invoice:{i}" not in state.results and _due(sub):
            ctx.ledger.record(external_id, {f"invoice:{i}": _invoice(ctx, external_id, state.results[f"subscription:{i}"])})


def _create(ctx: StepContext, order: Order, i: int, contact_id: str, plan_id: str, field: dict) -> Results:
    body = payloads.subscription_body(order.subscriptions[i], contact_id, plan_id)
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
    return {f"subscription:{i}": str(created["id"]), f"subamount:{i}": str(created.get("billing_amount", ""))}


def _find(ctx: StepContext, order: Order, i: int, contact_id: str, plan_id: str, field: dict) -> Results | None:
    """This order's subscription to the plan: same contact and plan, and this order's external id, exactly."""
    found = ctx.keap.subscriptions.find(contact_id=contact_id, subscription_plan_id=plan_id)
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
    return {f"subscription:{i}": str(mine[0]["id"]), f"subamount:{i}": str(mine[0].get("billing_amount", ""))}


def _check_amount(ctx: StepContext, order: Order, results: dict[str, str], i: int) -> None:
    """The spec does not say whether billing_amount is in cents or currency units: read it back and stop the
    order on any difference rather than bill a customer 100 times too much or too little."""
    want = order.subscriptions[i].billing_amount
    if want is None or results.get(f"subamount:{i}") in (None, "") or Decimal(results[f"subamount:{i}"]) == want:
        return
    sub_id = results[f"subscription:{i}"]
    current = ctx.keap.subscriptions.get(sub_id).get("billing_amount")  # an operator may have corrected it
    ctx.ledger.record(order.external_id, {f"subamount:{i}": str(current)})
    if current is not None and Decimal(str(current)) == want:
        return
    raise OrderRejected(
        f"order {order.external_id}: subscriptions[{i}]: Keap subscription {sub_id} bills {current}, the order "
        f"says {want}; correct the billing amount of the subscription in Keap, then run "
        f"`keap-orders retry {order.external_id}`"
    )


def _invoice(ctx: StepContext, external_id: str, subscription_id: str) -> str:
    """Invoice the cycle that is due now; Keap answers 400 when nothing is due, which is not a failure."""
    try:
        invoice = ctx.keap.subscriptions.invoice(subscription_id)
    except KeapValidationError as exc:
        log.info("order %s: subscription %s not invoiced: %s", external_id, subscription_id, exc.message)
        return "not-due"
    return str((invoice or {}).get("id", "none"))


def _due(sub) -> bool:
    """A subscription starting today (Keap's default) has a cycle due now, so Keap should invoice it."""
    today = datetime.now(timezone.utc).date()
    return sub.start_date is None or sub.start_date <= today
