"""The keeper: the part of the system that watches the clock. One pass (`tick`) every few seconds from Celery beat.

It releases parked orders whose time has come (retries with a long wait, rate-limit waits, the daily quota, settle
times) and sends again orders that stopped moving: a queued order whose message never started, a running order
whose worker died (its lease ran out), a queued one whose message a dead worker held (its heartbeat stopped). Each
pass reads only the orders that are due (a sorted set by time), so its cost follows the work that is due, never the
size of the ledger. Two keepers at once are safe: taking a due
order is atomic, and a re-sent order gets a new ticket that makes its older messages stale. It also refreshes the
OAuth tokens when due (`keep_tokens`), compacts done orders past their retention (`compact`), watches for a Redis
that lost writes, and audits orders whose writes were uncertain once AUDIT_AFTER_SECONDS have passed (`audit`).
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Protocol

from worker.keap import CredentialRevoked, KeapError
from worker.keap.tokens import OAuthTokens
from worker.ledger import FINAL, Due, Ledger
from worker.liveness import LOOK_AFTER_SECONDS
from worker.settings import Settings
from worker.steps.audit import Findings, audit_order
from worker.steps.base import OrderRejected, StepContext

log = logging.getLogger(__name__)


class Send(Protocol):
    def __call__(self, external_id: str, lane: str, step: str, ticket: str | None) -> None:
        """Send the chain from `step` with `ticket`, or the single `step` on its own when ticket is None."""


def tick(ledger: Ledger, settings: Settings, send: Send, limit: int = 500) -> Counter:
    """One pass; returns what it did per kind (released, redriven, failed, working, forgotten)."""
    done: Counter = Counter()
    for external_id in ledger.due(limit):
        due = ledger.take_due(external_id, look_again_in=settings.queued_stall_seconds)
        if due is not None:
            done[_handle(ledger, settings, send, due)] += 1
    if done:
        log.info("keeper: %s", ", ".join(f"{kind} {n}" for kind, n in sorted(done.items())))
    return done


def keep_tokens(tokens: OAuthTokens | None) -> None:
    """Refresh the OAuth tokens ahead of expiry and at least every 30 days, so requests seldom wait for a refresh
    and an idle grant's refresh token does not die. Cheap when nothing is due (one Redis round trip)."""
    if tokens is None:
        return
    try:
        tokens.refresh_if_due()
    except CredentialRevoked:
        pass  # the fleet is paused and was alerted once; `auth login` resumes it
    except KeapError as exc:
        log.warning("keeper: OAuth token refresh failed (%s); the next pass or a request tries again",
                    type(exc).__name__)


def compact(ledger: Ledger, settings: Settings, limit: int = 500) -> int:
    """Compact done orders older than DONE_RETENTION_DAYS to their done marker, at most `limit` a pass (a backlog
    is worked off over several passes); returns how many were compacted."""
    if settings.done_retention_days <= 0:
        return 0
    _, compacted = ledger.compact_done(settings.done_retention_days * 86400, limit)
    if compacted:
        log.info("keeper: compacted %d done order(s) older than %g days", compacted, settings.done_retention_days)
    return compacted


def audit(ctx: StepContext, settings: Settings, limit: int = 20) -> Counter:
    """Audit the orders whose audit is due (O(due)): finished ones AUDIT_AFTER_SECONDS after they finished; active ones
    are looked at again later. Returns what it did (clean, deleted, reported, later, retry). Also finds a Redis that
    lost writes, even when no worker writes."""
    ledger, after, done = ctx.ledger, settings.audit_after_seconds, Counter()
    ledger.check_redis()
    for ext, writes in ledger.take_audits(limit, hold=max(60.0, after / 4)):
        state = ledger.get(ext)
        if state is None:
            ledger.audit_done(ext, "gone")
            continue
        finished = state.done_at or state.updated_at or 0.0
        if state.status not in FINAL or finished + after > ledger.now():
            ledger.audit_at(ext, (ledger.now() if state.status not in FINAL else finished) + after)
            done["later"] += 1
            continue
        try:
            found = audit_order(ctx, ext, writes)
        except KeapError as exc:
            log.warning("order %s: audit postponed, Keap did not answer (%s)", ext, type(exc).__name__)
            done["retry"] += 1
            continue  # held for a while, then due again
        except OrderRejected as exc:  # the lookup itself stopped (e.g. two matches): an operator looks
            found = Findings(reports=[str(exc)])
        report = "\n".join(found.reports) or None
        ledger.audit_done(ext, found.result, report)
        done["reported" if report else "deleted" if found.deleted else "clean"] += 1
        if report:
            log.warning("order %s: audit found what an operator must check: %s", ext, report)
            _alert(ext, report)
    return done


def _alert(external_id: str, report: str) -> None:
    """One Sentry warning per reported order (scrubbed like every event: ids, no customer data)."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        with sentry_sdk.new_scope() as scope:
            scope.fingerprint = ["keap-orders", "audit", external_id]
            sentry_sdk.capture_message(f"audit: {report}", level="warning")


def _handle(ledger: Ledger, settings: Settings, send: Send, due: Due) -> str:
    ext, stall = due.external_id, settings.queued_stall_seconds
    if due.status in ("done", "failed") and due.single:
        steps, ticket_of = due.single.split(), lambda ticket: None  # steps sent on their own, finished order
    elif due.status in ("queued", "running", "waiting"):
        steps, ticket_of = [due.step], lambda ticket: ticket
    else:
        ledger.forget_watch(ext)  # finished or cancelled: nothing to watch
        return "forgotten"
    if due.status == "waiting" and due.parked_until is not None:
        if due.parked_until > due.now:
            ledger.watch_at(ext, due.parked_until)
            return "waiting"
        ticket = ledger.resend(ext, due.status, stall, redrive=False)
        if ticket:
            for step in steps:
                send(ext, due.lane, step, ticket_of(ticket))
            log.info("order %s: released %s (%s)", ext, " ".join(steps), due.parked_reason)
        return "released"
    if due.lease_alive:
        ledger.watch_at(ext, due.now + settings.lease_seconds)  # slow but alive: look again later
        return "working"
    holder = ledger.holder(ext) if due.status == "queued" else None
    if holder is not None and holder.alive and due.now < holder.queued_since + stall:
        # A live worker holds the message (prefetched, or a retry's countdown): look again until the stall time.
        ledger.watch_at(ext, min(due.now + LOOK_AFTER_SECONDS, holder.queued_since + stall))
        return "held"
    if due.redrives >= settings.max_redrives:
        ledger.fail(ext, step=steps[0], kind="stalled",
                    error=f"order {ext}: {' '.join(steps)} made no progress after {due.redrives} re-sends (each time "
                          f"its worker died or its message was lost); check that workers consume the {due.lane} lane "
                          f"and stay up, then run `keap-orders retry {ext}`")
        log.error("order %s: failed at %s: stalled after %d re-sends", ext, steps[0], due.redrives)
        return "failed"
    ticket = ledger.resend(ext, due.status, stall, redrive=True)
    if ticket:
        for step in steps:
            send(ext, due.lane, step, ticket_of(ticket))
        log.warning("order %s: %s stalled (%s), sent again", ext, " ".join(steps),
                    "worker gone" if due.status == "running" or holder is not None else "message never started")
    return "redriven"
