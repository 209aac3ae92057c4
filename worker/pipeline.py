"""The one definition of an order's steps: their order, their Celery task names, and the lanes.

Tasks, producers, the CLI and the benches all read it; adding a step is a module under worker/steps/ (with a
`run(ctx, external_id)`) and a line here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from worker.settings import Settings
from worker.steps import (
    add_items,
    create_order,
    create_subscription,
    record_payment,
    set_custom_fields,
)
from worker.steps.base import StepContext


@dataclass(frozen=True)
class Step:
    name: str  # the step's name in the ledger, the CLI and the logs
    task: str  # the Celery task name, as it appears in the broker, Flower and logs
    run: Callable[[StepContext, str], None]  # the step module's `run(ctx, external_id)`


STEPS: tuple[Step, ...] = (
    Step("create_order", "keap.create_order", create_order.run),
    Step("add_items", "keap.add_items", add_items.run),
    Step("record_payment", "keap.record_payment", record_payment.run),
    Step("set_custom_fields", "keap.set_custom_fields", set_custom_fields.run),
    Step("create_subscription", "keap.create_subscription", create_subscription.run),
)
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)
FIRST, LAST = STEP_NAMES[0], STEP_NAMES[-1]
LANES = ("live", "backfill")  # live is served first and never waits behind a backfill


def step(name: str) -> Step:
    for candidate in STEPS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"step {name!r}: use one of {', '.join(STEP_NAMES)}")


def step_for_task(task_name: str) -> Step:
    for candidate in STEPS:
        if candidate.task == task_name:
            return candidate
    raise ValueError(f"no step runs as task {task_name!r}")


def steps_from(name: str) -> tuple[Step, ...]:
    """The chain that resumes an order at `name`: that step and every step after it."""
    return STEPS[STEPS.index(step(name)):]


def queue_for(lane: str, settings: Settings) -> str:
    if lane not in LANES:
        raise ValueError(f"lane {lane!r}: use one of {', '.join(LANES)}")
    return settings.live_queue if lane == "live" else settings.backfill_queue
