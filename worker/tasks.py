"""The Celery tasks: one per step of worker/pipeline.py (named there, e.g. `keap.create_order`), and the keeper's.

Thin: call the runner (or the keeper), then map its outcome to Celery — go on with the chain, retry after a
countdown, or cut the chain; a step that failed the order ends in Celery's FAILURE state (`OrderFailed`), so Flower
agrees with the ledger.
"""
from __future__ import annotations

from functools import partial

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from worker import context, keeper, pipeline, runner
from worker.app import app, send
from worker.ops import observe


class OrderFailed(Exception):
    """The step failed the order; the runner recorded why in the ledger (`keap-orders failed`). Raised so the task
    ends in FAILURE; an expected exception (`throws`): logged without a traceback, never a Sentry error, and the
    message is acknowledged, not retried or delivered again."""


class StepTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    # Celery's own count is not the budget: waits for the rate limit must not use it up, so the budget is
    # the `failures` argument (transient Keap errors only), checked by the runner against MAX_RETRIES.
    max_retries = None
    throws = (OrderFailed,)


def run_step_task(self: StepTask, external_id: str, ticket: str | None = None, failures: int = 0) -> None:
    step = pipeline.step_for_task(self.name)
    settings, ctx = context.current()
    with observe.StepRun(settings, ctx.ledger, step.name, external_id, self.request.retries + 1) as run:
        outcome = run.ended(runner.run_step(ctx, settings, step.name, external_id, ticket=ticket, failures=failures,
                                            interrupted=(SoftTimeLimitExceeded,)))
    if outcome.action == "retry":
        raise self.retry(countdown=outcome.countdown, kwargs={"ticket": ticket, "failures": outcome.failures})
    if outcome.action == "stop":
        self.request.chain = None
    if outcome.result == "failed":
        raise OrderFailed(f"order {external_id}: {step.name} failed ({outcome.error_kind}): {run.reason}; see "
                          f"`keap-orders status {external_id}`")


# One task per step, each under the name the pipeline gives it (keap.create_order, keap.add_items, ...).
TASKS = {step.name: app.task(bind=True, base=StepTask, name=step.task)(run_step_task) for step in pipeline.STEPS}


@app.task(name="keap.keeper", ignore_result=True)
def keeper_task() -> None:
    """One pass of the keeper (Celery beat sends it every KEEPER_INTERVAL_SECONDS)."""
    settings, ctx = context.current()
    keeper.tick(ctx.ledger, settings, partial(send, settings))
    keeper.compact(ctx.ledger, settings)
    keeper.audit(ctx, settings)
    keeper.keep_tokens(context.current_tokens())  # after the orders: a refresh is an HTTP call that may be slow
