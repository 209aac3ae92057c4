"""Backfill of the example file through the real worker, then read back and compared order by order."""
from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

from admin.verify import verify_file
from producers.backfill import Backfill

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_orders_are_imported_and_match_the_file(ctx, producer):
    out, report = io.StringIO(), io.StringIO()
    progress = Backfill(producer, window=10, out=out, report=report).run(EXAMPLES / "orders.jsonl", wait=True)

    assert progress.total >= 51 and progress.invalid == 1
    assert progress.failed == 0, progress.failures
    assert progress.done == progress.valid
    # The invalid row is reported with its line number, field and fix, and nothing else is in the report.
    [error] = report.getvalue().splitlines()
    assert error.startswith("line ") and "order " in error

    checked, problems = verify_file(EXAMPLES / "orders.jsonl", None, ctx)
    assert checked == progress.valid and problems == []

    # Running the same file again sends nothing: every order is already done.
    again = Backfill(producer, window=10, out=io.StringIO()).run(EXAMPLES / "orders.jsonl", wait=True)
    assert again.skipped == progress.valid and again.finished_this_run == 0


def test_csv_export_is_imported(ctx, producer):
    progress = Backfill(producer, window=5, out=io.StringIO()).run(EXAMPLES / "orders.csv", wait=True)
    assert progress.valid > 0 and progress.done == progress.valid and progress.failed == 0
    checked, problems = verify_file(EXAMPLES / "orders.csv", None, ctx)
    assert checked == progress.valid and problems == []


def test_window_bounds_orders_in_flight(ctx, tmp_path, producer):
    """With window 3 the producer never has more than 3 of its orders queued or running."""
    orders = [json.loads(line) for line in (EXAMPLES / "orders.jsonl").read_text().splitlines()[:12]]
    for order in orders:
        order["external_id"] = f"w-{uuid.uuid4().hex[:6]}-{order['external_id']}"
    path = tmp_path / "some.jsonl"
    path.write_text("".join(json.dumps(order) + "\n" for order in orders))
    seen = []

    class Spy(Backfill):
        def _poll(self, progress):
            seen.append(len(progress.in_flight))
            super()._poll(progress)

    progress = Spy(producer, window=3, out=io.StringIO()).run(path, wait=True)
    assert seen and max(seen) <= 3
    assert progress.done + progress.invalid == progress.total
