"""The `keap-orders` command as an operator uses it, against the sandbox and the real worker."""
from __future__ import annotations

import json
import time

from click.testing import CliRunner

from admin.cli import main
from worker.app import send
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import typical_order


def write_jsonl(path, orders):
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    return path


def test_backfill_wait_report_status_and_verify(ctx, ext, tmp_path, cli_env):
    good = [typical_order(f"{ext}-{i}") for i in range(3)]
    bad = typical_order(f"{ext}-bad")
    bad["items"][0]["unit_price"] = "1.999"
    path = write_jsonl(tmp_path / "orders.jsonl", [good[0], bad, good[1], good[2]])
    report = tmp_path / "report.txt"

    result = CliRunner(env=cli_env).invoke(main, ["backfill", str(path), "--wait", "--report", str(report)])
    assert result.exit_code == 3, result.output  # every valid order done, but a row was invalid
    assert "done:           3" in result.output and "invalid rows:   1" in result.output
    assert "no worker is consuming" not in result.output  # the test's worker answers the broker's ping
    assert report.read_text().startswith("line 2: order ") and "items[0].unit_price" in report.read_text()

    status = CliRunner(env=cli_env).invoke(main, ["status", f"{ext}-1", "--json"])
    assert status.exit_code == 0 and json.loads(status.output)["status"] == "done"
    words = CliRunner(env=cli_env).invoke(main, ["status", f"{ext}-1"]).output
    assert "status" in words and "done" in words and " UTC (" in words and "order_id=" in words
    assert "customer" not in status.output and "@example.com" not in status.output  # no customer data

    verify = CliRunner(env=cli_env).invoke(main, ["verify", str(path)])
    assert verify.exit_code == 0 and "verified 3 orders: 0 problem(s)" in verify.output


def test_backfill_wait_exits_4_when_an_order_fails_then_retry_fixes_it(ctx, ext, tmp_path, cli_env):
    order = typical_order(ext)
    order["items"][0]["sku"] = "NOT-IN-KEAP"
    path = write_jsonl(tmp_path / "orders.jsonl", [order])
    result = CliRunner(env=cli_env).invoke(main, ["backfill", str(path), "--wait"])
    assert result.exit_code == 4 and "failed:         1" in result.output

    failed = CliRunner(env=cli_env).invoke(main, ["failed"])
    assert ext in failed.output and "create_order" in failed.output and "NOT-IN-KEAP" in failed.output

    order["items"][0]["sku"] = "TSHIRT-M"
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(order))
    retry = CliRunner(env=cli_env).invoke(main, ["retry", ext, "--file", str(fixed)])
    assert retry.exit_code == 0, retry.output
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"


def test_dry_run_finds_unknown_skus_and_writes_nothing(ctx, keap_sandbox, ext, tmp_path, cli_env):
    order = typical_order(ext, subscriptions=[{"sku": "MUG-CLASSIC", "billing_cycle": "MONTHLY"}])
    order["items"][1]["sku"] = "NOPE-9"
    order["payments"][0]["method"] = "Wire Transfer"
    path = write_jsonl(tmp_path / "orders.jsonl", [order, typical_order(f"{ext}-ok")])
    writes = {k: v for k, v in keap_sandbox.stats()["requests"].items() if not k.startswith("GET")}
    result = CliRunner(env=cli_env).invoke(main, ["backfill", str(path), "--dry-run"])
    assert result.exit_code == 3
    assert "items[1].sku" in result.output and "NOPE-9" in result.output
    assert "subscriptions[0].billing_cycle" in result.output
    assert "payments[0].method: 'Wire Transfer' is not one of the manual payment types" in result.output
    assert "1 orders ready, 1 with problems" in result.output
    assert {k: v for k, v in keap_sandbox.stats()["requests"].items() if not k.startswith("GET")} == writes
    assert ctx.ledger.get(ext) is None


def test_cancelled_order_is_final(ctx, keap_sandbox, ext, producer, cli_env, settings):
    _, _, step, ticket = ctx.ledger.register(ext, typical_order(ext), "live", first_step="create_order")
    assert CliRunner(env=cli_env).invoke(main, ["cancel", ext]).exit_code == 0
    calls = keap_sandbox.stats()["total"]
    send(settings, ext, "live", step, ticket)  # a message that was on its way when the order was cancelled
    time.sleep(1)
    assert ctx.ledger.get(ext).status == "cancelled" and "order_id" not in ctx.ledger.get(ext).results
    assert keap_sandbox.stats()["total"] == calls
    again = producer.enqueue_order(typical_order(ext))  # a backfill run again, another producer
    assert not again.sent and again.status == "cancelled"
    retry = CliRunner(env=cli_env).invoke(main, ["retry", ext])
    assert retry.exit_code == 1 and "cancelled order is final" in retry.output
    assert ctx.ledger.get(ext).status == "cancelled" and keap_sandbox.stats()["total"] == calls


def test_schema_is_json_schema_of_an_order(cli_env):
    result = CliRunner(env=cli_env).invoke(main, ["schema"])
    schema = json.loads(result.output)
    assert "external_id" in schema["properties"] and "external_id" in schema["required"]


def test_a_wrongly_shaped_file_is_refused_whole_in_one_line(ctx, tmp_path, cli_env):
    path = tmp_path / "export.csv"
    path.write_text("Date,Order #,Total\n2024-03-05,1001,10.00\n")
    for args in (["--wait"], ["--dry-run"]):
        result = CliRunner(env=cli_env).invoke(main, ["backfill", str(path), *args])
        assert result.exit_code == 1, result.output
        assert "cannot be imported: header: unknown column(s) 'Date'" in result.output
        assert "Traceback" not in result.output and ctx.ledger.count("queued") == 0


def test_exit_codes_and_the_interrupt_message():
    from admin.cli.imports import exit_code, interrupted
    from producers.backfill import Progress

    assert exit_code(Progress(total=3, done=3), waited=True) == 0
    assert exit_code(Progress(total=3, done=2, invalid=1), waited=True) == 3
    assert exit_code(Progress(total=3, done=1, invalid=1, failed=1), waited=True) == 4
    assert exit_code(Progress(total=3, done=1), waited=True) == 4  # not finished
    assert exit_code(Progress(total=3, done=0), waited=False) == 0 and exit_code(Progress(total=1, invalid=1), False) == 3
    progress = Progress(total=10, done=2, sent=5, in_flight={"a", "b", "c"})
    text = interrupted(progress, ["keap-orders", "backfill", "orders.csv", "--wait"])
    assert "5 order(s) sent by this run, 2 done" in text and "3 still in flight" in text
    assert text.endswith("keap-orders backfill orders.csv --wait") and "run the same command again" in text
