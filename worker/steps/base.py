"""What every step shares: its dependencies, the errors it raises, loading the order, and `write_once`.

`write_once` is the exactly-once rule for a write Keap has no idempotency key for: record the intent right before
the request leaves (after its send slot, while the lease surely holds); after an unanswered write, look for it at
once (found: recorded, no wait), else wait until it can no longer land (the settle time), then look for it several
times, and write again only when none of those lookups found it. Its answer is recorded only under the lease;
without it, it is kept as an orphan. A write Keap answered 2xx keeps its intent whatever fails after it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Callable

from worker.contract import Order, OrderInvalid, parse_order
from worker.keap import KeapClient, KeapError, KeapOutcomeUnknown
from worker.ledger import Lease, LeaseLost, Ledger, OrderState, OrphanWrite
from worker.throttle import QuotaWait

log = logging.getLogger(__name__)

Results = dict[str, str]


class OrderRejected(Exception):
    """Keap (or our own rules) refuse this order as it is: an operator must fix the cause, then retry.

    The message names the order, the field and what to do; it never contains customer data.
    """


class NotApplied(OrderRejected):
    """Keap answered the write and says it took no effect (a declined charge): nothing to reconcile, and an operator
    must fix the cause."""


class Settle(Exception):
    """Nothing may be written for this order before `until` (Redis time): an earlier write may still land."""

    def __init__(self, until: float, reason: str):
        super().__init__(reason)
        self.until = until
        self.reason = reason


@dataclass
class StepContext:
    keap: KeapClient
    ledger: Ledger
    external_id_label: str = "External Order ID"
    # Custom field labels missing from Keap's order model are created as TEXT fields when True.
    create_missing_custom_fields: bool = True
    # After an unanswered write: how long Keap may still apply it, and how many lookups must miss it after that.
    settle_seconds: float = 120.0
    settle_checks: int = 3
    lease_seconds: float = 15.0
    token: str | None = None  # the lease token of the step run: intents are written only while it holds
    lease: Lease | None = None  # the step run's lease: nothing is sent once it could have run out


def load(ctx: StepContext, external_id: str) -> tuple[OrderState, Order]:
    state = ctx.ledger.get(external_id)
    if state is None or state.message is None:
        raise OrderRejected(
            f"order {external_id}: not in the ledger; send it with enqueue_order (or `keap-orders backfill`) first"
        )
    try:
        # A stored message was valid when it was queued; its start dates may have passed since, which is
        # Keap's to judge (it answers 400), so the past-date check is off here.
        order = parse_order(state.message, today=date.min)
    except OrderInvalid as exc:
        raise OrderRejected(str(exc)) from exc
    return state, order


def keap_order_id(state: OrderState) -> str:
    """The Keap order a later step works on; it exists only once create_order has run."""
    if "order_id" not in state.results:
        raise OrderRejected(
            f"order {state.external_id}: has no Keap order yet; run the whole order "
            f"(`keap-orders retry {state.external_id}`)"
        )
    return state.results["order_id"]


def write_once(ctx: StepContext, state: OrderState, what: str, *, find: Callable[[], Results | None],
               write: Callable[[], Results], unproven: str | None = None) -> Results:
    """Do the write named `what` exactly once and return what it recorded (`what` among the results).

    `find()` looks for the write in Keap (exact matches only; it raises OrderRejected on an ambiguous match) and
    returns the results to record, or None. `unproven`: if set, a write whose absence the lookups could not
    prove is not repeated; the order fails with this operator message instead (stored-card charges).
    """
    if what in state.results:
        return {what: state.results[what]}
    ctx.ledger.lost_write(state, what, looked=ctx.settle_checks - 1)  # Redis lost writes? then an intent is set
    intent = state.intents.get(what)
    if intent is not None:
        log.info("order %s: settling: %s was sent and its answer never recorded", state.external_id, what)
        now = ctx.ledger.now()
        if now < intent.at + ctx.settle_seconds:
            # Most lost answers are writes Keap applied and answered too late: finding one is proof, and the
            # order goes on at once. Finding nothing proves nothing yet (it may still land): settle.
            found = find()
            if found is not None:
                log.info("order %s: %s found in Keap right after an unanswered write", state.external_id, what)
                return _record(ctx, state, found)
            raise Settle(intent.at + ctx.settle_seconds, f"an earlier {what} write may still land in Keap")
        found = find()
        if found is not None:
            log.info("order %s: %s found in Keap after an unanswered write", state.external_id, what)
            return _record(ctx, state, found)
        checks = ctx.ledger.note_check(state.external_id, what)
        if checks < ctx.settle_checks:
            # One empty lookup is not proof: look again later, further apart each time.
            raise Settle(now + ctx.settle_seconds / 4 * 2 ** (checks - 1),
                         f"{what}: lookup {checks} of {ctx.settle_checks} found nothing")
        if unproven and not intent.checked_by_operator:
            raise OrderRejected(unproven)
        log.warning("order %s: %s not in Keap after %d lookups over %.0fs; writing it again", state.external_id,
                    what, checks, now - intent.at)
    applied: list[str] = []
    try:
        with ctx.keap.fenced(lambda: _fence(ctx, state.external_id, what)) as applied:
            results = write()
    except KeapOutcomeUnknown:
        raise  # the intent stays: the next attempt reconciles
    except NotApplied:
        ctx.ledger.clear_intent(state.external_id, what, ctx.token)
        raise
    except (KeapError, OrderRejected, QuotaWait, LeaseLost):
        # Keap answered (the write was not applied), or the request never left (no slot soon enough, no lease)...
        if not applied:
            ctx.ledger.clear_intent(state.external_id, what, ctx.token)
        # ...unless Keap took the write (2xx) and what followed it in the step failed (a read, a slot, the lease):
        # then the intent stays, and the next attempt finds the write at once and records it.
        raise
    return _record(ctx, state, results, what)


def _fence(ctx: StepContext, external_id: str, what: str) -> None:
    """Right before a request of the write leaves, after its slot: the lease must surely hold, then the intent is
    marked (in Redis, only under the lease), then the lease must still surely hold (no stop since the mark)."""
    hold(ctx, external_id, what)
    ctx.ledger.mark_intent(external_id, what, ctx.token)
    hold(ctx, external_id, what)


def hold(ctx: StepContext, external_id: str, what: str = "a Keap call") -> None:
    """The fence of every request a step run sends (the runner's) and of a write's: the run's lease must surely
    hold, or LeaseLost is raised and nothing is sent."""
    if ctx.lease is not None and not ctx.lease.holds():
        raise LeaseLost(f"order {external_id}: {what} not sent, the lease may have run out")


def _record(ctx: StepContext, state: OrderState, results: Results, write: str | None = None) -> Results:
    """Record under the lease; `write`: these results are that write's answer, kept as an orphan without it."""
    try:
        ctx.ledger.record(state.external_id, results, ctx.token, write=write)
    except OrphanWrite:
        # One error, ids only: Keap holds a record the ledger does not point at (a duplicate, most likely).
        log.error("order %s: Keap answered %s with id %s after this worker lost the order's lease; kept as an "
                  "orphan write, the ledger unchanged: check Keap for a duplicate", state.external_id, write,
                  results.get(write))
        raise
    state.results.update(results)
    for name in results:
        state.intents.pop(name, None)
    return results
