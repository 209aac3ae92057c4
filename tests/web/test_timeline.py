"""An order's timeline on the console: each finished step with when, how long and how many attempts, from the stamps
the ledger keeps as the steps end (real Redis, the ledger's own scripts)."""
from __future__ import annotations

import time

from admin.web.console.views import timeline
from worker import pipeline
from worker.ledger import Ledger


def test_each_finished_step_shows_when_how_long_and_its_attempts(redis_client, key_prefix):
    ledger = Ledger(redis_client, key_prefix)
    names = pipeline.STEP_NAMES
    ticket = ledger.register("t-1", {"external_id": "t-1"}, "live", first_step=names[0])[3]
    for i, name in enumerate(names):
        tries = 2 if name == names[1] else 1  # the second step needed a retry
        for _ in range(tries):
            assert ledger.claim("t-1", name, f"run-{i}", 5, ticket, names)[0] == "ok"
            if tries > 1 and _ == 0:
                ledger.retry("t-1", token=f"run-{i}", ticket=ticket, step=name, start_within=30)
        time.sleep(0.01)
        if name == names[-1]:
            ledger.finish("t-1", token=f"run-{i}", ticket=ticket)
        else:
            ledger.advance("t-1", token=f"run-{i}", ticket=ticket, step=names[i + 1], start_within=30)
    state = ledger.get("t-1")
    assert list(state.finished) == list(names)
    times = [state.finished[n][0] for n in names]
    assert times == sorted(times) and times[0] >= state.created_at
    shown = {step.name: step for step in timeline(state)}
    assert all(step.state == "done" and "finished " in step.detail and "took " in step.detail
               for step in shown.values())
    assert shown[names[1]].detail.endswith("2 attempt(s)") and shown[names[0]].detail.endswith("1 attempt(s)")
