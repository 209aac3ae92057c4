"""The one definition of an order's steps: their order, their Celery task names, and the lanes.

Tasks, producers, the CLI and the benches all read it; adding a step is a module under worker/steps/ and a
line here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from worker.settings import Settings
from worker.steps.base import StepContext


@dataclass(frozen=True)
class Step:
    name: str  # also the module under worker/steps/ whose `run(ctx, external_id)` does the work
    task: str  # the Celery task name, as it appears in the broker, Flower and logs

    @property
    def run(self) -> Callable[[StepContext, str], None]:
        return importlib.import_module(f"worker.steps.{self.name}").run


STEPS: tuple[Step, ...] = (
    Step("create_order", "keap.create_order"),
    Step("add_items", "keap.add_items"),
    Step("record_payment", "keap.record_payment"),
    Step("set_custom_fields", "keap.set_custom_fields"),
    Step("create_subscription", "keap.create_subscription"),
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
