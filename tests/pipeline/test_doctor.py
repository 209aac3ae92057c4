"""`keap-orders doctor` against the sandbox: read-only checks of the account and of a file before a backfill."""
from __future__ import annotations

import json

from click.testing import CliRunner

from admin.cli import main
from tests.pipeline.test_pipeline import typical_order


def write(path, orders):
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    return path


def test_a_ready_account_and_file(ctx, keap_sandbox, ext, tmp_path, cli_env):
    path = write(tmp_path / "orders.jsonl", [typical_order(f"{ext}-{i}") for i in range(3)])
    writes = {k: v for k, v in keap_sandbox.stats()["requests"].items() if not k.startswith("GET")}
    result = CliRunner(env=cli_env).invoke(main, ["doctor", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok  credential: an API key" in result.output and "works against" in result.output
    assert "order external-id field:" in result.output and "subscription external-id field:" in result.output
    assert "3 order(s) ready, 0 with problems" in result.output
    assert "need about" in result.output and "Keap calls" in result.output  # the calls and days estimate
    assert {k: v for k, v in keap_sandbox.stats()["requests"].items() if not k.startswith("GET")} == writes
    assert ctx.ledger.get(f"{ext}-0") is None  # nothing was registered or sent


def test_a_file_with_problems_lists_them_by_line(ctx, ext, tmp_path, cli_env):
    bad_sku = typical_order(f"{ext}-sku")
    bad_sku["items"][0]["sku"] = "NOT-IN-KEAP"
    bad_method = typical_order(f"{ext}-pay")
    bad_method["payments"][0]["method"] = "Bitcoin"
    path = write(tmp_path / "orders.jsonl", [typical_order(f"{ext}-ok"), bad_sku, bad_method])
    result = CliRunner(env=cli_env).invoke(main, ["doctor", str(path)])
    assert result.exit_code == 3, result.output
    assert "line 2: order" in result.output and "NOT-IN-KEAP" in result.output
    assert "line 3: order" in result.output and "'Bitcoin' is not one of the manual payment types" in result.output
    assert "FAIL  file: 1 order(s) ready, 2 with problems" in result.output
    assert "keap-orders retry" not in result.output  # nothing was imported: the fix is to the file or to Keap


def test_the_figures_agree_with_each_other_and_with_quota(ctx, ext, tmp_path, cli_env):
    import re

    invalid = typical_order(f"{ext}-bad")
    invalid["items"][0]["unit_price"] = "1.999"
    unknown = typical_order(f"{ext}-sku")
    unknown["items"][0]["sku"] = "NOT-IN-KEAP"
    path = write(tmp_path / "orders.jsonl", [typical_order(f"{ext}-ok"), invalid, unknown])
    env = {**cli_env, "RATE_LIMITS": "5/s,240/min,30000/day"}
    doctor = CliRunner(env=env).invoke(main, ["doctor", str(path)]).output
    ready, problems = map(int, re.search(r"file: (\d+) order\(s\) ready, (\d+) with problems", doctor).groups())
    rows, invalid_rows, valid = map(int, re.search(r"(\d+) order\(s\) in the file, (\d+) invalid: the (\d+) valid",
                                                   doctor).groups())
    assert (ready + problems, invalid_rows, valid) == (rows, 1, rows - 1) == (3, 1, 2)
    pace = re.search(r"the workers keep to .*\(([\d.]+) calls/s\)", doctor).group(1)
    assert f"at {pace} calls/s the calls alone take" in doctor
    quota = CliRunner(env=env).invoke(main, ["quota", str(path)]).output
    assert f", {pace} calls/s:" in quota and f"at {pace} calls/s the calls alone take" in quota
    assert re.search(r"(\d+) order\(s\) in the file", quota).group(1) == "3"


def test_a_refused_credential_stops_at_the_first_check(cli_env):
    result = CliRunner(env={**cli_env, "KEAP_API_KEY": "KeapAK-not-this-one"}).invoke(main, ["doctor"])
    assert result.exit_code == 6  # EXIT_KEAP
    assert "FAIL  credential: Keap refused an API key" in result.output and "KeapAK-not-this-one" not in result.output
