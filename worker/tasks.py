"""The Celery tasks: one per step of worker/pipeline.py (named there, e.g. `keap.create_order`), and the keeper's.

Thin: call the runner (or the keeper), then map its outcome to Celery — go on with the chain, retry after a
countdown, or cut the chain.
"""
from __future__ import annotations

from functools import partial

from celery import Task

from worker import context, keeper, pipeline, runner
from worker.app import app, send


class StepTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    # Celery's own count is not the budget: waits for the rate limit must not use it up, so the budget is
    # the `failures` argument (transient Keap errors only), checked by the runner against MAX_RETRIES.
    max_retries = None


def run_step_task(self: StepTask, external_id: str, ticket: str | None = None, failures: int = 0) -> None:
    step = pipeline.step_for_task(self.name)
    settings, ctx = context.current()
    outcome = runner.run_step(ctx, settings, step.name, external_id, ticket=ticket, failures=failures)
    if outcome.action == "retry":
        raise self.retry(countdown=outcome.countdown, kwargs={"ticket": ticket, "failures": outcome.failures})
    if outcome.action == "stop":
        self.request.chain = None


# One task per step, each under the name the pipeline gives it (keap.create_order, keap.add_items, ...).
TASKS = {step.name: app.task(bind=True, base=StepTask, name=step.task)(run_step_task) for step in pipeline.STEPS}


@app.task(name="keap.keeper", ignore_result=True)
def keeper_task() -> None:
    """One pass of the keeper (Celery beat sends it every KEEPER_INTERVAL_SECONDS)."""
    settings, ctx = context.current()
    keeper.tick(ctx.ledger, settings, partial(send, settings))
    keeper.keep_tokens(context.current_tokens())  # after the orders: a refresh is an HTTP call that may be slow
