"""The lifecycle of one step of one order, without Celery: cancel check, per-order lock, status, run, outcome.

The task calls `run_step` and maps the returned Outcome to Celery: continue the chain, retry later, or cut the
chain. Failures are recorded in the ledger here, with an operator's message that says what to do.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from redis.exceptions import LockError

from worker import pipeline
from worker.keap import (
    KeapAuthError,
    KeapNotFound,
    KeapPermanentError,
    KeapQuotaExhausted,
    KeapRateLimited,
    KeapTransientError,
)
from worker.settings import Settings
from worker.steps.base import OrderRejected, StepContext
from worker.throttle import LANE, QuotaWait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What the task does next: "next" (go on with the chain), "retry" (after `countdown`), "stop" (cut it)."""

    action: str
    countdown: float = 0.0
    failures: int = 0


NEXT, STOP = Outcome("next"), Outcome("stop")


def backoff(failures: int, settings: Settings) -> float:
    """Exponential backoff with full jitter, capped below the broker's visibility timeout.

    A countdown longer than the visibility timeout makes Redis deliver the task a second time
    (celery#2599, kombu#337), so the cap is kept at half of it.
    """
    cap = min(settings.retry_backoff_cap_seconds, settings.visibility_timeout_seconds / 2)
    return random.uniform(0, min(cap, 2.0 * 2**failures))


def refused(external_id: str, step: str, exc: KeapPermanentError) -> str:
    """An operator's message for a request Keap will not accept as it is: what happened and what to do."""
    if isinstance(exc, KeapAuthError):
        todo = "check KEAP_API_KEY / KEAP_ACCESS_TOKEN and the key's permissions, then"
    elif isinstance(exc, KeapNotFound):
        todo = "a Keap record this order refers to is gone (deleted in Keap?); check it, then"
    else:
        todo = "fix the order (or the Keap setup it needs), then"
    return f"order {external_id}: {step}: Keap refused the request ({exc}); {todo} run `keap-orders retry {external_id}`"


def run_step(ctx: StepContext, settings: Settings, step: str, external_id: str, *, failures: int = 0,
             last: bool = True) -> Outcome:
    """Run `step` of one order once. `last`: nothing follows it in this chain, so success finishes the order.

    Raises only for a bug (after recording it as the order's failure), so the task ends in Celery's FAILURE.
    """
    state = ctx.ledger.get(external_id)
    if state is not None and state.status == "cancelled":
        log.info("order %s: cancelled, skipping %s", external_id, step)
        return STOP
    # One step of one order at a time: a second delivery of the same step waits here, then finds the first
    # one's results in the ledger and makes no Keap call.
    lock = ctx.ledger.lock(f"order:{external_id}", timeout=settings.visibility_timeout_seconds / 2, blocking=5)
    if not lock.acquire():
        return Outcome("retry", random.uniform(1, 5), failures)
    try:
        return _run_locked(ctx, settings, step, external_id, failures, last)
    finally:
        try:
            lock.release()
        except LockError:  # expired while the step ran; the ledger still holds the truth
            log.warning("order %s: step lock expired during %s", external_id, step)


def _run_locked(ctx: StepContext, settings: Settings, step: str, external_id: str, failures: int,
                last: bool) -> Outcome:
    ctx.ledger.start_step(external_id, step)
    state = ctx.ledger.get(external_id)
    lane = LANE.set(state.lane if state else "live")
    try:
        pipeline.step(step).run(ctx, external_id)
    except OrderRejected as exc:
        return _fail(ctx, step, external_id, str(exc), "rejected")
    except KeapPermanentError as exc:
        return _fail(ctx, step, external_id, refused(external_id, step, exc), "keap")
    except (QuotaWait, KeapRateLimited) as exc:
        # Waiting for the limit is not a failure: it does not count against the retry budget.
        wait = exc.seconds if isinstance(exc, QuotaWait) else (exc.retry_after or backoff(failures, settings))
        if isinstance(exc, KeapQuotaExhausted):
            log.warning("order %s: Keap daily quota exhausted", external_id)
        return Outcome("retry", min(wait, settings.visibility_timeout_seconds / 2), failures)
    except KeapTransientError as exc:
        if failures >= settings.max_retries:
            return _fail(ctx, step, external_id, f"gave up after {failures + 1} attempts: {exc}; once Keap answers "
                         f"again, run `keap-orders retry {external_id}`", "transient")
        log.warning("order %s: %s failed (%s), retrying", external_id, step, type(exc).__name__)
        return Outcome("retry", backoff(failures, settings), failures + 1)
    except Exception as exc:
        # A bug, not Keap: record it for the operator, then let Celery (and Sentry) see the traceback.
        _fail(ctx, step, external_id, f"internal error {type(exc).__name__}: {exc}", "internal")
        raise
    finally:
        LANE.reset(lane)
    if last:
        ctx.ledger.finish(external_id)
        log.info("order %s: done", external_id)
    return NEXT


def _fail(ctx: StepContext, step: str, external_id: str, error: str, kind: str) -> Outcome:
    ctx.ledger.fail(external_id, step, error, kind)
    log.error("order %s: failed at %s: %s", external_id, step, error)
    return STOP  # the rest of this order's chain must not run on a failed step
