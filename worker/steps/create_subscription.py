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
    todo = [i for i in range(len(order.subscriptions)) if f"subscription:{i}" not in state.results]
    invoices = [i for i in range(len(order.subscriptions)) if _due(order.subscriptions[i]) and f"invoice:{i}" not in state.results]
    if not todo and not invoices:
        return
    contact_id = state.results.get("contact_id") or resolve.contact_id(ctx, order)
    for i in todo:
        plan_id = resolve.plan_id(ctx, order, i)
        what = f"subscription:{i}"
        existing = _existing(ctx, contact_id, plan_id) if what in state.intents else None
        if existing is None:
            ctx.ledger.mark_intent(external_id, what)
            try:
                existing = ctx.keap.subscriptions.create(payloads.subscription_body(order.subscriptions[i], contact_id, plan_id))
            except KeapValidationError as exc:
                existing = _existing(ctx, contact_id, plan_id)
                if existing is None:
                    raise OrderRejected(
                        f"order {external_id}: subscriptions[{i}]: Keap refused the subscription ({exc.message}); "
                        f"fix the subscription in the order, then run `keap-orders retry {external_id}`"
                    ) from exc
                # Keap's duplicate check: the contact already has this plan. Link it instead of a second one.
                log.warning("order %s: subscription %s already existed in Keap; linked it", external_id, existing["id"])
        ctx.ledger.record(external_id, {what: str(existing["id"])})
        state.results[what] = str(existing["id"])
    for i in invoices:
        invoice = ctx.keap.subscriptions.invoice(state.results[f"subscription:{i}"])
        ctx.ledger.record(external_id, {f"invoice:{i}": str((invoice or {}).get("id", "none"))})


def _due(sub) -> bool:
    """A subscription starting today (Keap's default) has a cycle due now, so Keap should invoice it."""
    today = datetime.now(timezone.utc).date()
    return sub.start_date is None or sub.start_date <= today


def _existing(ctx: StepContext, contact_id: str, plan_id: str) -> dict | None:
    found = ctx.keap.subscriptions.find(contact_id=contact_id, subscription_plan_id=plan_id)
    active = [s for s in found if s.get("active", True)]
    return active[-1] if active else None
