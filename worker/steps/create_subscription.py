"""Step 5: create each subscription not yet created (plan chosen by SKU + billing cycle), invoicing it when due."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from worker.keap import KeapValidationError
from worker.steps import payloads, resolve
from worker.steps.base import OrderRejected, StepContext, load

log = logging.getLogger(__name__)


def run(ctx: StepContext, external_id: str) -> None:
    state, order = load(ctx, external_id)
    subs = order.subscriptions
    todo = [i for i in range(len(subs)) if f"subscription:{i}" not in state.results]
    if todo:
        contact_id = state.results.get("contact_id") or resolve.contact_id(ctx, order)
        for i in todo:
            state.results.update(_create(ctx, order, i, contact_id, f"subscription:{i}" in state.intents))
    # Invoicing is a separate, repeatable call (Keap answers 400 once nothing is due), so it is done after the
    # subscription id is safely recorded.
    for i in range(len(subs)):
        if f"invoice:{i}" not in state.results and _due(subs[i]):
            ctx.ledger.record(external_id, {f"invoice:{i}": _invoice(ctx, external_id, state.results[f"subscription:{i}"])})


def _create(ctx: StepContext, order, i: int, contact_id: str, attempted: bool) -> dict[str, str]:
    external_id, what = order.external_id, f"subscription:{i}"
    plan_id = resolve.plan_id(ctx, order, i)
    existing = _existing(ctx, contact_id, plan_id) if attempted else None
    if existing is not None:
        results = {what: str(existing["id"])}
    else:
        ctx.ledger.mark_intent(external_id, what)
        try:
            created = ctx.keap.subscriptions.create(payloads.subscription_body(order.subscriptions[i], contact_id, plan_id))
            results = {what: str(created["id"])}
        except KeapValidationError as exc:
            linked = _existing(ctx, contact_id, plan_id) if "duplicate" in exc.message.lower() else None
            if linked is None:
                raise OrderRejected(
                    f"order {external_id}: subscriptions[{i}]: Keap refused the subscription ({exc.message}); "
                    f"fix the subscription in the order, then run `keap-orders retry {external_id}`"
                ) from exc
            # Keap's duplicate check: the contact already has this plan. Link it rather than make a second.
            log.warning("order %s: subscription %s already existed in Keap; linked it", external_id, linked["id"])
            results = {what: str(linked["id"]), f"invoice:{i}": "linked"}
    ctx.ledger.record(external_id, results)
    return results


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


def _existing(ctx: StepContext, contact_id: str, plan_id: str) -> dict | None:
    found = ctx.keap.subscriptions.find(contact_id=contact_id, subscription_plan_id=plan_id)
    active = [s for s in found if s.get("active", True)]
    return active[-1] if active else None
