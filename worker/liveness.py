"""A worker's heartbeat in Redis and the messages it holds: the keeper re-sends a queued order whose message a dead
worker held (prefetched, a retry's countdown, or the next step's message it was to send after finishing a step) within
seconds, instead of after QUEUED_STALL_SECONDS."""
from __future__ import annotations

import logging
import threading

import redis

from worker import context, pipeline
from worker.ledger import Ledger
from worker.settings import get_settings

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
GONE_AFTER_SECONDS = 3 * BEAT_SECONDS  # a worker that missed three beats is gone (killed, frozen or cut off)
LOOK_AFTER_SECONDS = GONE_AFTER_SECONDS + BEAT_SECONDS  # when the keeper first asks whether a holder lives

_STEP_TASKS = {step.task: step.name for step in pipeline.STEPS}
_ledger: Ledger | None = None


def _the_ledger() -> Ledger:
    # Its own client in the worker's main process (the pool's processes build their own context after the fork).
    global _ledger
    if _ledger is None:
        _ledger = context.ledger(get_settings())
    return _ledger


def start_beating(worker: str, stop: threading.Event | None = None) -> threading.Thread:
    """Beat every BEAT_SECONDS in a daemon thread of the worker's main process, for as long as the process lives."""
    stop = stop or threading.Event()

    def beat() -> None:
        while True:
            try:
                _the_ledger().beat(worker, GONE_AFTER_SECONDS)
            except redis.RedisError as exc:
                log.debug("worker %s: heartbeat not written (%s)", worker, type(exc).__name__)
            if stop.wait(BEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="keap-orders-heartbeat", daemon=True)
    thread.start()
    return thread


def received(worker: str, task_name: str, args: tuple, kwargs: dict) -> None:
    """The worker received a message: if it is an order's current chain message, the order notes who holds it."""
    ticket = (kwargs or {}).get("ticket")
    if not ticket or not args or task_name not in _STEP_TASKS:
        return  # the keeper's task, or a step sent on its own (the lease and the stall rule cover those)
    try:
        _the_ledger().received(str(args[0]), ticket, _STEP_TASKS[task_name], worker, LOOK_AFTER_SECONDS)
    except redis.RedisError as exc:
        log.debug("order %s: holder not recorded (%s)", args[0], type(exc).__name__)
