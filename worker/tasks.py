"""The step tasks, one per step of worker/pipeline.py (named there, e.g. `keap.create_order`).

Thin: call the runner, then map its outcome to Celery — go on with the chain, retry later, or cut the chain.
"""
from __future__ import annotations

from celery import Task

from worker import context, pipeline, runner
from worker.app import app


class StepTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    # Celery's own count is not the budget: waits for the rate limit must not use it up, so the budget is
    # the `failures` argument (transient Keap errors only), checked by the runner against MAX_RETRIES.
    max_retries = None


def run_step_task(self: StepTask, external_id: str, failures: int = 0) -> None:
    step = pipeline.step_for_task(self.name)
    settings, ctx = context.current()
    outcome = runner.run_step(ctx, settings, step.name, external_id, failures=failures, last=not self.request.chain)
    if outcome.action == "retry":
        raise self.retry(countdown=outcome.countdown, kwargs={"failures": outcome.failures})
    if outcome.action == "stop":
        self.request.chain = None


# One task per step, each under the name the pipeline gives it (keap.create_order, keap.add_items, ...).
TASKS = {step.name: app.task(bind=True, base=StepTask, name=step.task)(run_step_task) for step in pipeline.STEPS}
