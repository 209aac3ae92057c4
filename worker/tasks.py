"""The five step tasks. Thin: call one step, then map its outcome to retry, park-and-retry or fail."""
from __future__ import annotations

import hashlib
import logging
import random
from functools import lru_cache
from typing import Callable

import redis
from celery import Task
from redis.exceptions import LockError

from worker.app import app
from worker.keap import (
    ApiKeyAuth,
    BearerAuth,
    KeapAuthError,
    KeapClient,
    KeapNotFound,
    KeapPermanentError,
    KeapQuotaExhausted,
    KeapRateLimited,
    KeapTransientError,
)
from worker.ledger import Ledger
from worker.settings import get_settings
from worker.steps import add_items, create_order, create_subscription, record_payment, set_custom_fields
from worker.steps.base import OrderRejected, StepContext
from worker.throttle import QuotaWait, Throttle, ThrottledSession, parse_limits

log = logging.getLogger(__name__)

STEPS: dict[str, Callable[[StepContext, str], None]] = {
    "create_order": create_order.run,
    "add_items": add_items.run,
    "record_payment": record_payment.run,
    "set_custom_fields": set_custom_fields.run,
    "create_subscription": create_subscription.run,
}


@lru_cache
def context() -> StepContext:
    """The step dependencies of this worker process, built once from the settings."""
    s = get_settings()
    client = redis.Redis.from_url(s.redis_url)
    if s.keap_api_key:
        secret, auth, profile = s.keap_api_key.get_secret_value(), ApiKeyAuth(s.keap_api_key.get_secret_value()), "sak"
    elif s.keap_access_token:
        token = s.keap_access_token.get_secret_value()
        secret, auth, profile = token, BearerAuth(lambda: token), "oauth"
    else:
        raise RuntimeError("no Keap credential: set KEAP_API_KEY (or KEAP_ACCESS_TOKEN) in the environment or .env")
    # The limit belongs to the credential, so its Redis key does too (hashed: no secret in key names).
    credential = hashlib.sha256(secret.encode()).hexdigest()[:16]
    throttle = Throttle(client, parse_limits(s.rate_limits or profile), key=f"{s.key_prefix}:throttle:{credential}")
    keap = KeapClient(s.keap_base_url, auth, session=ThrottledSession(throttle), timeout=(5.0, s.keap_timeout_seconds))
    return StepContext(
        keap=keap,
        ledger=Ledger(client, s.key_prefix),
        external_id_label=s.external_id_field_label,
        create_missing_custom_fields=s.create_missing_custom_fields,
    )


def backoff(failures: int) -> float:
    """Exponential backoff with full jitter, capped below the broker's visibility timeout.

    A countdown longer than the visibility timeout makes Redis deliver the task a second time
    (celery#2599, kombu#337), so the cap is kept at half of it.
    """
    s = get_settings()
    cap = min(s.retry_backoff_cap_seconds, s.visibility_timeout_seconds / 2)
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


class StepTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    # Celery's own count is not the budget: waits for the rate limit must not use it up, so the budget is
    # the `failures` argument (transient Keap errors only), checked against MAX_RETRIES below.
    max_retries = None

    def run_step(self, step: str, external_id: str, failures: int) -> None:
        ctx = context()
        state = ctx.ledger.get(external_id)
        if state is not None and state.status == "cancelled":
            log.info("order %s: cancelled, skipping %s", external_id, step)
            self.request.chain = None
            return
        s = get_settings()
        # One step of one order at a time: a second delivery of the same step waits here, then finds the
        # first one's results in the ledger and makes no Keap call.
        lock = ctx.ledger.lock(f"order:{external_id}", timeout=s.visibility_timeout_seconds / 2, blocking=5)
        if not lock.acquire():
            raise self.retry(countdown=random.uniform(1, 5), kwargs={"failures": failures})
        try:
            self._run_locked(ctx, step, external_id, failures)
        finally:
            try:
                lock.release()
            except LockError:  # expired while the step ran; the ledger still holds the truth
                log.warning("order %s: step lock expired during %s", external_id, step)

    def _run_locked(self, ctx: StepContext, step: str, external_id: str, failures: int) -> None:
        s = get_settings()
        ctx.ledger.start_step(external_id, step)
        try:
            STEPS[step](ctx, external_id)
        except OrderRejected as exc:
            self._fail(ctx, step, external_id, str(exc), "rejected")
            return
        except KeapPermanentError as exc:
            self._fail(ctx, step, external_id, refused(external_id, step, exc), "keap")
            return
        except (QuotaWait, KeapRateLimited) as exc:
            # Waiting for the limit is not a failure: it does not count against the retry budget.
            wait = exc.seconds if isinstance(exc, QuotaWait) else (exc.retry_after or backoff(failures))
            if isinstance(exc, KeapQuotaExhausted):
                log.warning("order %s: Keap daily quota exhausted", external_id)
            raise self.retry(countdown=min(wait, s.visibility_timeout_seconds / 2),
                             kwargs={"failures": failures})
        except KeapTransientError as exc:
            if failures >= s.max_retries:
                self._fail(ctx, step, external_id, f"gave up after {failures + 1} attempts: {exc}; once Keap answers "
                           f"again, run `keap-orders retry {external_id}`", "transient")
                return
            log.warning("order %s: %s failed (%s), retrying", external_id, step, type(exc).__name__)
            raise self.retry(countdown=backoff(failures), kwargs={"failures": failures + 1})
        except Exception as exc:
            # A bug, not Keap: record it for the operator, then let Celery (and Sentry) see the traceback.
            self._fail(ctx, step, external_id, f"internal error {type(exc).__name__}: {exc}", "internal")
            raise
        if not self.request.chain:
            ctx.ledger.finish(external_id)
            log.info("order %s: done", external_id)

    def _fail(self, ctx: StepContext, step: str, external_id: str, error: str, kind: str) -> None:
        ctx.ledger.fail(external_id, step, error, kind)
        log.error("order %s: failed at %s: %s", external_id, step, error)
        # The rest of this order's chain must not run on a failed step.
        self.request.chain = None


def _step_task(step: str):
    @app.task(bind=True, base=StepTask, name=f"keap.{step}")
    def task(self, external_id: str, failures: int = 0) -> None:
        self.run_step(step, external_id, failures)

    return task


# keap.create_order, keap.add_items, keap.record_payment, keap.set_custom_fields, keap.create_subscription
TASKS = {step: _step_task(step) for step in STEPS}
