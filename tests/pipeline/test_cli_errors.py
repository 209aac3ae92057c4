"""The CLI's error boundary as an operator meets it: every command with Redis down, Keap unreachable or a wrong key
ends within seconds with a short message and an exit code of the one table (README, `--help`), never a traceback."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from click.testing import CliRunner

from admin.cli import main
from admin.cli.base import EXIT_CODES, EXIT_KEAP, EXIT_REDIS
from tests.conftest import REDIS_URL, SANDBOX_KEY

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "examples" / "shopify_orders_export.csv"

# Every command that reads Redis; each must give up on a dead one.
WITH_REDIS = [["status", "1001"], ["failed"], ["failed", "--json"], ["stuck", "--older-than", "5m"],
              ["retry", "1001"], ["retry", "--failed", "--yes"], ["cancel", "1001", "--yes"], ["export", "1001"],
              ["gc", "--dry-run"], ["doctor"], ["doctor", str(EXPORT)], ["quota"], ["quota", str(EXPORT)],
              ["backfill", str(EXPORT)], ["backfill", str(EXPORT), "--dry-run"], ["verify", str(EXPORT)],
              ["jobs"], ["jobs", "show", "j-1"], ["backfill", str(EXPORT), "--detach"], ["feeder", "--once"]]
# Every command that calls Keap; each must check it before anything else. (The others read Redis only.)
WITH_KEAP = [["doctor"], ["doctor", str(EXPORT)], ["backfill", str(EXPORT)],
             ["backfill", str(EXPORT), "--dry-run"], ["verify", str(EXPORT)]]

OAUTH = {"KEAP_API_KEY": "", "KEAP_CLIENT_ID": "app", "KEAP_CLIENT_SECRET": "secret",
         "TOKEN_ENCRYPTION_KEY": "fM4n0mYx3d9Yl4YyW1r1m0b8m9bJ1p1q3Q2kXw5v6fA="}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def run(args, env) -> tuple[list[str], int, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "admin.cli", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return args, done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_every_command_fails_fast_and_short_without_redis_or_keap(keap_sandbox, key_prefix):
    base = {"KEY_PREFIX": key_prefix, "RATE_LIMITS": "off", "KEAP_BASE_URL": keap_sandbox.base_url,
            "REDIS_URL": REDIS_URL, "KEAP_API_KEY": SANDBOX_KEY, "LIVE_QUEUE": f"{key_prefix}.live",
            "BACKFILL_QUEUE": f"{key_prefix}.backfill"}
    cases = ([(a, {**base, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}, EXIT_REDIS) for a in WITH_REDIS]
             + [(["auth", "status"], {**base, **OAUTH, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}, EXIT_REDIS)]
             + [(a, {**base, "KEAP_BASE_URL": f"http://127.0.0.1:{closed_port()}/crm"}, EXIT_KEAP) for a in WITH_KEAP]
             + [(a, {**base, "KEAP_API_KEY": "KeapAK-wrong"}, EXIT_KEAP) for a in WITH_KEAP])
    with ThreadPoolExecutor(3) as pool:  # 2 cores: more only slows each process down
        results = list(pool.map(lambda case: (case[2], *run(case[0], case[1])), cases))
    for expected, args, code, output, took in results:
        assert code == expected, (args, code, output)
        assert took < 15, (args, took)
        assert "Traceback" not in output and len(output.strip().splitlines()) <= 12, (args, output)
        errors = [line for line in output.splitlines() if line.startswith(("error:", "   FAIL  credential:"))]
        assert len(errors) == 1 and ("Redis" in errors[0] or "Keap" in errors[0]), (args, output)
    print(f"{len(results)} runs, slowest {max(r[-1] for r in results):.1f} s:", sorted((round(r[-1], 1), r[1]) for r in results)[-4:])


def test_the_readme_and_help_show_the_exit_codes_the_commands_use():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert codes == set(EXIT_CODES)
    help_text = CliRunner().invoke(main, ["--help"]).output
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning[:40])}", help_text, re.M), code
    from worker.app import EX_CONFIG
    from admin.cli.base import EXIT_CONFIG
    assert EX_CONFIG == EXIT_CONFIG


def test_every_command_has_an_example_and_the_top_help_keeps_whole_descriptions():
    assert CliRunner().invoke(main, ["--version"]).output.startswith("keap-orders ")
    top = CliRunner().invoke(main, ["--help"]).output
    assert "..." not in top.split("Commands:")[1].split("Exit codes")[0]
    commands = [[name] for name in main.commands if name != "auth"] + [["auth", n] for n in main.commands["auth"].commands]
    for command in commands:
        shown = CliRunner().invoke(main, [*command, "--help"]).output
        assert "Example" in shown and "keap-orders " + command[0] in shown.split("Example", 1)[1], command


def test_a_missing_file_is_a_usage_error_and_an_unreadable_one_an_error(tmp_path, cli_env):
    result = CliRunner(env=cli_env).invoke(main, ["backfill", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = CliRunner(env=cli_env).invoke(main, ["backfill", str(empty), "--dry-run"])
    assert result.exit_code == 1 and "the file is empty" in result.output


def test_bad_durations_are_usage_errors(cli_env):
    result = CliRunner(env=cli_env).invoke(main, ["stuck", "--older-than", "five minutes"])
    assert result.exit_code == 2 and "90s, 5m, 2h, 1d" in result.output
