"""The lifecycle of one step of one order, without Celery: claim (lease), run, and what happens next.

A step run claims the order's lease (renewed while it works, gone within seconds if the worker dies), runs the
step, and ends the run in the ledger in one script: next step, done, failed (with an operator's message), a
short retry through the broker, or parked outside the broker until a time (long backoff, rate limit, daily
quota, settle time) for the keeper to release. The task maps the returned Outcome to Celery.
"""
from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field, replace

import redis

from worker import liveness, pipeline
from worker.keap import (
    CredentialRefused,
    KeapAuthError,
    KeapNotFound,
    KeapPermanentError,
    KeapQuotaExhausted,
    KeapRateLimited,
    KeapTransientError,
)
from worker.ledger import Lease, LeaseLost, leases
from worker.settings import Settings
from worker.steps.base import OrderRejected, Settle, StepContext, hold
from worker.throttle import LANE, QuotaWait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What the task does next: "next" (go on with the chain), "retry" (after `countdown`), "stop" (cut it).

    For logs and metrics, `result` says what happened (next, done, single, retry, parked, failed, skipped, busy,
    lost, interrupted), with the order's lane, the wait's reason, and a failure's error kind and message.
    """

    action: str
    countdown: float = 0.0
    failures: int = 0
    # What happened, not what to do next: left out of comparisons.
    result: str = field(default="", compare=False)
    lane: str = field(default="", compare=False)
    reason: str = field(default="", compare=False)
    error_kind: str = field(default="", compare=False)
    error: str = field(default="", compare=False)


NEXT, STOP = Outcome("next"), Outcome("stop")
REAUTH = CredentialRefused.waiting
REAUTH_WAIT_SECONDS = 86400.0  # looked at again daily; `auth login` releases the order sooner


@dataclass(frozen=True)
class _Wait:
    seconds: float
    reason: str
    failures: int
    held: bool = False  # waits for a credential fixed: released by `keap-orders auth login` / `auth resume`


@dataclass(frozen=True)
class _Failed:
    error: str
    kind: str


_DONE, _LOST = "done", "lost"  # the step did its work; the lease was lost, so another run owns the order


def backoff(failures: int, settings: Settings) -> float:
    """Exponential backoff with full jitter (long waits are parked outside the broker, so no visibility limit)."""
    return random.uniform(0, min(settings.retry_backoff_cap_seconds, 2.0 * 2**failures))


def refused(external_id: str, step: str, exc: KeapPermanentError) -> str:
    """An operator's message for a request Keap will not accept as it is: what happened and what to do."""
    if isinstance(exc, KeapNotFound):
        todo = "a Keap record this order refers to is gone (deleted in Keap?); check it, then"
    else:
        todo = "fix the order (or the Keap setup it needs), then"
    return f"order {external_id}: {step}: Keap refused the request ({exc}); {todo} run `keap-orders retry {external_id}`"


@dataclass(frozen=True)
class Run:
    """One run of one step of one order: what travels from the claim to the end of the run."""

    external_id: str
    step: str
    ticket: str | None  # the sending of the order this chain message belongs to; None: a step sent on its own
    failures: int = 0  # failed attempts of this step so far (the retry budget)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # holds the order's lease during the run


def run_step(ctx: StepContext, settings: Settings, step: str, external_id: str, *, ticket: str | None = None,
             failures: int = 0, interrupted: tuple[type[BaseException], ...] = ()) -> Outcome:
    """Run `step` of one order once. `ticket`: the sending of the order this chain message belongs to (None for a
    step sent on its own, which never moves the order's status on success). `interrupted`: exceptions that mean the
    run was cut short from outside (the worker's soft time limit): the step is retried like a transient error.

    Raises only for a bug (after recording it as the order's failure), so the task ends in Celery's FAILURE.
    """
    ledger = ctx.ledger
    run = Run(external_id, step, ticket, failures)
    claimed = leases.clock()  # the lease's own deadline counts from when the claim was sent
    verdict, status, lane = ledger.claim(external_id, step, run.token, settings.lease_seconds, ticket,
                                         pipeline.STEP_NAMES)
    if verdict == "busy":
        # Another run of this order holds the lease: this delivery waits its turn, then finds the work done.
        return Outcome("retry", random.uniform(1, 5), failures, result="busy", lane=lane)
    if verdict != "ok":
        log.info("order %s: %s not run (%s)", external_id, step, verdict)
        return replace(STOP, result="skipped", lane=lane, reason=verdict)
    lease = Lease(ledger, f"order:{external_id}", settings.lease_seconds, run.token, since=claimed)
    lease.keep()
    lane_token = LANE.set(lane)
    try:
        held = replace(ctx, token=run.token, lease=lease)
        # No request of this run leaves once its lease could have run out (a stopped worker waking up).
        with ctx.keap.fenced(lambda: hold(held, external_id)):
            result = _run(held, settings, run)
    except redis.RedisError as exc:
        # Redis itself is out of reach: nothing can be recorded now. The lease runs out by itself; the delivery
        # comes back (or the keeper re-sends the order) once Redis answers again.
        log.warning("order %s: %s interrupted, Redis unreachable (%s)", external_id, step, type(exc).__name__)
        return Outcome("retry", random.uniform(2, 5), failures, result="interrupted", lane=lane)
    except interrupted as exc:
        result = _timed_out(run, settings, exc)
    except Exception as exc:
        # A bug, not Keap: record it for the operator, then let Celery (and Sentry) see the traceback.
        _end(ctx, settings, run,
             _Failed(f"internal error in {step} ({type(exc).__name__}); see the worker log, fix the cause, then run "
                     f"`keap-orders retry {external_id}`", "internal"))
        raise
    finally:
        LANE.reset(lane_token)
        lease.release()
    if result == _LOST:
        log.warning("order %s: lease lost during %s; the order is left to its new holder", external_id, step)
        return replace(STOP, result="lost", lane=lane)
    return replace(_end(ctx, settings, run, result), lane=lane)


def _timed_out(run: Run, settings: Settings, exc: BaseException) -> _Wait | _Failed:
    # Unanswered writes keep their intents, so the next run reconciles before writing again.
    external_id, step, failures = run.external_id, run.step, run.failures
    if failures >= settings.max_retries:
        return _Failed(f"order {external_id}: {step}: gave up after {failures + 1} attempts that each ran past the "
                       f"time limit ({type(exc).__name__}); once Keap answers promptly again, run "
                       f"`keap-orders retry {external_id}`", "transient")
    return _Wait(backoff(failures, settings), "the step ran past its time limit, trying again", failures + 1)


def transient_cause(exc: KeapTransientError) -> str:
    """Why a step waits, in words an operator reads in `status` (the message names no customer data)."""
    if exc.status:
        return f"Keap answered HTTP {exc.status}; trying again"
    if "could not connect" in exc.message:
        return "Keap could not be reached; trying again"
    return "Keap did not answer in time; trying again"


def _run(ctx: StepContext, settings: Settings, run: Run) -> _Wait | _Failed | str:
    external_id, step, failures = run.external_id, run.step, run.failures
    try:
        pipeline.step(step).run(ctx, external_id)
    except OrderRejected as exc:
        return _Failed(str(exc), "rejected")
    except KeapAuthError as exc:
        # A credential Keap refuses never fails an order: nothing can succeed until someone fixes it. The order
        # waits, held, and `auth login` / `auth resume` releases it at once (see worker/keap/auth.py).
        return _Wait(REAUTH_WAIT_SECONDS, getattr(exc, "waiting", REAUTH), failures, held=True)
    except KeapPermanentError as exc:
        return _Failed(refused(external_id, step, exc), "keap")
    except Settle as exc:
        return _Wait(max(0.0, exc.until - ctx.ledger.now()), f"settling: {exc.reason}", failures)
    except QuotaWait as exc:
        # Waiting for the limit is not a failure: it does not count against the retry budget.
        if exc.daily:
            return _Wait(exc.seconds + random.uniform(0, settings.quota_reset_spread_seconds), "daily quota", failures)
        return _Wait(exc.seconds, "rate limit", failures)
    except KeapQuotaExhausted as exc:
        return _Wait((exc.retry_after or 0) + random.uniform(0, settings.quota_reset_spread_seconds), "daily quota",
                     failures)
    except KeapRateLimited as exc:
        return _Wait(exc.retry_after or backoff(failures, settings), "rate limited by Keap", failures)
    except KeapTransientError as exc:
        if failures >= settings.max_retries:
            return _Failed(f"order {external_id}: {step}: gave up after {failures + 1} attempts: {exc}; once Keap "
                           f"answers again, run `keap-orders retry {external_id}`", "transient")
        log.warning("order %s: %s failed (%s), retrying", external_id, step, type(exc).__name__)
        # The cause in words (the message names no customer data), not the class: the operator reads it in status.
        return _Wait(backoff(failures, settings), transient_cause(exc), failures + 1)
    except TimeoutError:
        return _Wait(random.uniform(1, 5), "waiting for a shared lease", failures)
    except LeaseLost:
        return _LOST
    return _DONE


def _end(ctx: StepContext, settings: Settings, run: Run, result: _Wait | _Failed | str) -> Outcome:
    ledger, ext, stall = ctx.ledger, run.external_id, settings.queued_stall_seconds
    if isinstance(result, _Failed):
        ledger.fail(ext, token=run.token, ticket=run.ticket, step=run.step, error=result.error, kind=result.kind)
        # No log line of its own: the task logs every outcome (worker/logs.py), and an error line here would be a
        # Sentry error event per refused order.
        return replace(STOP, result="failed", error_kind=result.kind, error=result.error)  # cut the chain
    if isinstance(result, _Wait):
        if result.seconds <= settings.broker_retry_max_seconds or run.ticket is None:
            # Short waits go through the broker (a countdown far below the visibility timeout); a step sent on
            # its own has no chain to park, so it comes back through the broker too.
            wait = min(result.seconds, settings.broker_retry_max_seconds)
            if run.ticket is not None:
                # Looked at soon after the countdown: if this worker dies before its retry starts (even before it is
                # sent), the keeper finds the message's holder gone and sends the order again (worker/liveness.py).
                ledger.retry(ext, token=run.token, ticket=run.ticket, step=run.step,
                             start_within=wait + liveness.LOOK_AFTER_SECONDS)
            else:
                ledger.release(ext, token=run.token)
            return Outcome("retry", wait, result.failures, result="retry", reason=result.reason)
        until = ledger.now() + result.seconds
        ledger.park(ext, token=run.token, ticket=run.ticket, step=run.step, until=until, reason=result.reason)
        if result.held:
            ledger.hold(ext, "reauth")
        log.info("order %s: %s parked for %.0fs (%s)", ext, run.step, result.seconds, result.reason)
        return replace(STOP, result="parked", reason=result.reason)
    if run.ticket is None:
        ledger.finish_single(ext, token=run.token, step=run.step)
        return replace(STOP, result="single")
    if run.step == pipeline.LAST:
        moved = ledger.finish(ext, token=run.token, ticket=run.ticket)
        if moved:
            log.info("order %s: done", ext)
        return replace(STOP, result="done" if moved else "skipped")
    following = pipeline.STEP_NAMES[pipeline.STEP_NAMES.index(run.step) + 1]
    moved = ledger.advance(ext, token=run.token, ticket=run.ticket, step=following, start_within=stall,
                           look_in=liveness.LOOK_AFTER_SECONDS)
    return replace(NEXT, result="next") if moved else replace(STOP, result="skipped")
