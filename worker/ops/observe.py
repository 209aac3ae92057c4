"""A step run as the outside sees it: how long it took and how many Keap answers it got, one log line, the metrics,
and a grouped Sentry warning when it failed the order for a business reason (bugs reach Sentry as the task's
exception). The task wraps the runner in `StepRun`; the KeapClient reports every answer to `keap_answered`.
"""
from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

from worker import scrub
from worker.ops import logs, metrics
from worker.ops.sentry import Refusals
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.keap.quota import RateLimits
    from worker.ledger import Ledger
    from worker.runner import Outcome

# Keap answers of the step run in this thread (each step runs in its own thread or process).
_answers: ContextVar[list[int] | None] = ContextVar("keap_orders_step_answers", default=None)
# Failures an operator fixes (the order, the Keap account, an outage): warnings, grouped; the rest are bugs.
REFUSALS = ("rejected", "keap", "transient")


def keap_answered(method: str, route: str, status: int, limits: RateLimits | None) -> None:
    """The KeapClient's `on_response` hook: count the answer for the step run and in the metrics."""
    counter = _answers.get()
    if counter is not None:
        counter[0] += 1
    found = metrics.current()
    if found is not None:
        found.keap_answer(method, route, status, limits)


class StepRun:
    """`with StepRun(...) as run: outcome = run.ended(runner.run_step(...))`; an exception out of the block is a bug
    (the runner recorded it as the order's failure) and is reported as an internal failure, then re-raised."""

    def __init__(self, settings: Settings, ledger: Ledger, step: str, external_id: str, attempt: int) -> None:
        self.settings, self.ledger = settings, ledger
        self.step, self.external_id, self.attempt = step, external_id, attempt
        self.reason = ""

    def __enter__(self) -> StepRun:
        self._started = time.monotonic()
        self._counter = [0]
        self._token = _answers.set(self._counter)
        return self

    def __exit__(self, kind, exc, tb) -> None:
        _answers.reset(self._token)
        if exc is not None and isinstance(exc, Exception):
            self._report("failed", "", "internal", f"internal error in {self.step} ({type(exc).__name__})")

    def ended(self, outcome: Outcome) -> Outcome:
        self.reason = scrub.reason(outcome.error, self.external_id) if outcome.error else ""
        self._report(outcome.result or outcome.action, outcome.lane, outcome.error_kind, self.reason,
                     wait=outcome.reason)
        if outcome.result == "failed" and outcome.error_kind in REFUSALS:
            Refusals(self.ledger.redis, self.settings.key_prefix, self.settings.sentry_refusal_interval_seconds
                     ).report(self.external_id, self.step, outcome.error_kind, outcome.error)
        return outcome

    def _report(self, outcome: str, lane: str, error_kind: str, reason: str, *, wait: str = "") -> None:
        seconds = time.monotonic() - self._started
        logs.step_outcome(self.external_id, self.step, attempt=self.attempt, lane=lane, outcome=outcome,
                          keap_calls=self._counter[0], seconds=seconds, error_kind=error_kind, reason=reason)
        found = metrics.current()
        if found is not None:
            found.step(self.step, outcome, seconds, error_kind=error_kind, reason=wait)
