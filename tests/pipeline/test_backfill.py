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


def test_a_rerun_resumes_failed_orders_and_reports_conflicting_content(ctx, tmp_path, producer, cli_env):
    """Issue 16 case 8: no silent choices. A failed order is resumed by the same command; an order the ledger holds
    with other content (e.g. a live producer sent it first) is reported and counted, never dropped or replaced."""
    from admin.cli.imports import exit_code
    from worker import pipeline
    from worker.contract import parse_order

    orders = [json.loads(line) for line in (EXAMPLES / "orders.jsonl").read_text().splitlines()[:2]]
    for order in orders:
        order["external_id"] = f"r-{uuid.uuid4().hex[:6]}"
    failed, conflicting = orders
    producer.ledger.register(failed["external_id"], parse_order(failed).model_dump(mode="json"), "backfill",
                             first_step=pipeline.FIRST)
    producer.ledger.fail(failed["external_id"], step=pipeline.FIRST, error="lost", kind="transient")
    producer.enqueue_order({**conflicting, "notes": "sent live first"})
    path = tmp_path / "rerun.jsonl"
    path.write_text("".join(json.dumps(order) + "\n" for order in orders))

    out = io.StringIO()
    progress = Backfill(producer, window=5, out=out).run(path, wait=True)
    assert progress.resumed == 1 and progress.conflicts == 1 and progress.done == 1
    assert f"order {conflicting['external_id']}: other content" in out.getvalue() and "notes" in out.getvalue()
    assert "conflicts:      1" in progress.summary(True) and exit_code(progress, False) == 4
    assert producer.ledger.problem(conflicting["external_id"])["differences"] == ["notes"]
    assert producer.ledger.get(conflicting["external_id"]).message["notes"] == "sent live first"
    from click.testing import CliRunner

    from admin.cli import main

    shown = CliRunner(env=cli_env).invoke(main, ["status", conflicting["external_id"]]).output
    assert "problem: conflict (backfill rerun.jsonl)" in shown and "notes" in shown
    assert "order(s) with a problem" in CliRunner(env=cli_env).invoke(main, ["failed"]).output
