"""The CLI as operators use it (issue 18): ids as the store shows them, one duration syntax, --json and tables,
failed --group-by, verbs that ask or say when they would do nothing, retry --wait, export read back by retry."""
from __future__ import annotations

import json
import random

from click.testing import CliRunner

from admin.cli import main
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import typical_order


def cli(env, *args, input=None):
    return CliRunner(env=env).invoke(main, list(args), input=input)


def test_ids_as_the_operator_knows_them(ctx, cli_env):
    number = random.randrange(10**8, 10**9)
    ctx.ledger.register(f"shopify:{number}", typical_order(f"shopify:{number}"), "live", first_step="create_order")
    for typed in (f"#{number}", str(number), f"shopify:{number}"):
        shown = cli(cli_env, "status", typed, "--json")
        assert shown.exit_code == 0 and json.loads(shown.output)["external_id"] == f"shopify:{number}", typed
    ctx.ledger.register(f"woo:{number}", typical_order(f"woo:{number}"), "live", first_step="create_order")
    both = cli(cli_env, "status", f"#{number}")
    assert both.exit_code == 1 and f"shopify:{number}, woo:{number}" in both.output  # the candidates
    none = cli(cli_env, "export", "#1")
    assert none.exit_code == 1 and "not in the ledger (looked for #1, 1, shopify:1, woo:1)" in none.output


def test_status_finds_orders_by_email_and_keap_id_but_acting_commands_do_not(ctx, cli_env, ext):
    email = f"{ext}@Example.com"
    for n in (1, 2):
        ctx.ledger.register(f"{ext}-{n}", typical_order(f"{ext}-{n}", email=email), "live", first_step="create_order")
    keap_order = str(random.randrange(10**8, 10**9))
    ctx.ledger.record(f"{ext}-1", {"order_id": keap_order})
    shown = cli(cli_env, "status", keap_order, "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["external_id"] == f"{ext}-1"
    both = cli(cli_env, "status", email.lower())
    assert both.exit_code == 1 and f"{ext}-1 (customer email), {ext}-2 (customer email)" in both.output
    assert email.lower() not in both.output and "with that email" in both.output  # never repeated
    assert cli(cli_env, "cancel", keap_order, "--yes").exit_code == 1  # an acting command takes order ids only
    assert ctx.ledger.get(f"{ext}-1").status == "queued"
    none = cli(cli_env, "status", "nobody-" + email)
    assert none.exit_code == 1 and "not in the ledger (looked for that email)" in none.output


def test_durations_json_tables_and_group_by(ctx, producer, ext, cli_env):
    ids = [f"{ext}-{i}" for i in range(3)]
    for ext_i in ids:
        producer.enqueue_order(typical_order(ext_i, items=[{"sku": f"NOPE-{ext}", "quantity": 1,
                                                            "unit_price": "74.50"}]), "live")
    assert set(wait_until_finished(ctx.ledger, ids).values()) == {"failed"}

    table = cli(cli_env, "failed", "--reason", ext, "--since", "5m")
    lines = table.output.splitlines()
    assert lines[0].split() == ["ORDER", "STEP", "KIND", "FAILED", "REASON"]  # a header; no colour off a terminal
    assert "\x1b[" not in table.output and all(" UTC (" in line for line in lines[1:4])
    rows = json.loads(cli(cli_env, "failed", "--reason", ext, "--json").stdout)
    assert {r["external_id"] for r in rows} == set(ids) and all(r["kind"] == "rejected" for r in rows)
    grouped = json.loads(cli(cli_env, "failed", "--reason", ext, "--group-by", "reason", "--json").stdout)
    assert len(grouped) == 1 and grouped[0]["orders"] == 3 and f"NOPE-{ext}".upper() in grouped[0]["reason"].upper()
    assert cli(cli_env, "stuck", "--older-than", "5m").exit_code == 0  # the same syntax as --since
    assert isinstance(json.loads(cli(cli_env, "stuck", "--older-than", "90s", "--json").stdout), list)


def test_done_orders_cancel_asks_and_retry_does_nothing(ctx, producer, ext, cli_env):
    producer.enqueue_order(typical_order(ext), "live")
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    attempts = ctx.ledger.get(ext).attempts

    again = cli(cli_env, "retry", ext)
    assert again.exit_code == 0 and "already done in Keap; nothing was sent" in again.output
    assert ctx.ledger.get(ext).attempts == attempts and ctx.ledger.get(ext).status == "done"

    declined = cli(cli_env, "cancel", ext, input="n\n")
    assert declined.exit_code == 1 and "already in Keap" in declined.output and "Cancel it anyway?" in declined.output
    assert ctx.ledger.get(ext).status == "done"
    forced = cli(cli_env, "cancel", ext, "--yes")
    assert forced.exit_code == 0 and "already in Keap" in forced.output and ctx.ledger.get(ext).status == "cancelled"


def test_export_with_message_is_what_retry_file_reads_and_retry_waits(ctx, producer, ext, cli_env, tmp_path):
    order = typical_order(ext)
    order["items"][0]["sku"] = "NOT-IN-KEAP"
    producer.enqueue_order(order, "live")
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    exported = cli(cli_env, "export", ext, "--with-message")
    record = json.loads(exported.stdout)
    record["message"]["items"][0]["sku"] = "TSHIRT-M"  # the fix, made in the exported record
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(record))
    retried = cli(cli_env, "retry", ext, "--file", str(fixed), "--wait", "--timeout", "90s")
    assert retried.exit_code == 0, retried.output
    assert "1 of 1 order(s) done" in retried.output and ctx.ledger.get(ext).status == "done"


def test_retry_wait_exits_4_when_the_order_fails_again(ctx, producer, ext, cli_env):
    order = typical_order(ext)
    order["items"][0]["sku"] = "NOT-IN-KEAP"
    producer.enqueue_order(order, "live")
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    result = cli(cli_env, "retry", ext, "--wait")
    assert result.exit_code == 4 and "0 of 1 order(s) done" in result.output and "NOT-IN-KEAP" in result.output


def test_every_file_command_says_which_optional_columns_are_missing(ctx, cli_env, tmp_path):
    import csv

    from tests.pipeline.test_cli_errors import EXPORT

    with open(EXPORT, newline="", encoding="utf-8") as src:
        rows = list(csv.DictReader(src))
    names = [n for n in rows[0] if n != "Refunded Amount"]
    path = tmp_path / "no_refunds.csv"
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    for args in (["backfill", str(path), "--dry-run"], ["doctor", str(path)], ["quota", str(path)],
                 ["verify", str(path)]):
        result = cli(cli_env, *args)
        assert "warning: " in result.output and "Refunded Amount" in result.output, args


def test_failed_lists_an_orphan_write_with_what_to_do(ctx, ext, cli_env):
    import pytest

    from worker.ledger import OrphanWrite

    ctx.ledger.register(ext, {"external_id": ext}, "live", first_step="create_order")
    with pytest.raises(OrphanWrite):  # the answer of a write whose worker no longer holds the order
        ctx.ledger.record(ext, {"order_id": "9001"}, token="a-lease-long-gone", write="order_id")
    shown = cli(cli_env, "failed")
    assert f"{ext}\torphan write\torder_id" in shown.output and "Keap holds order_id 9001" in shown.output
    assert ctx.ledger.get(ext).results.get("order_id") is None  # the ledger was not re-pointed
    assert f"{ext}\torphan write" not in cli(cli_env, "failed", "--since", "5m").output  # no failed order
    ctx.ledger.redis.delete(ctx.ledger.orphans_key)  # other tests of this prefix list failed orders
