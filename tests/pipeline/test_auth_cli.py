"""`keap-orders auth` as an operator uses it, against the sandbox's authorize page and token endpoint: login by
pasting the address (state checked) or the bare code, or by a one-shot local callback server; status, refresh,
logout; what it says when the settings are missing."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import requests
from click.testing import CliRunner

from admin.auth import LoginError, code_from
from admin.cli import main
from tests.keap.test_tokens import oauth_env

ROOT = Path(__file__).resolve().parents[2]


def cli_login(env: dict[str, str], *args: str, answer: Callable[[str], str] | None = lambda landed: landed,
              expect: int = 0) -> tuple[str, str]:
    """Run `keap-orders auth login ARGS`, open the address it prints (the sandbox approves at once) and paste
    `answer(address the browser was sent to)`; answer=None: let the browser follow the redirect (--listen).
    Returns (everything it printed, the authorization code)."""
    proc = subprocess.Popen([sys.executable, "-m", "admin.cli", "auth", "login", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    printed = []
    while True:
        line = proc.stdout.readline()
        assert line, "".join(printed)
        printed.append(line)
        found = re.search(r"(http\S+/app/oauth/authorize\?\S+)", line)
        if found:
            break
    if answer is None:
        landed_at = requests.get(found.group(1), timeout=10)  # follows the redirect to the local callback
        landed, pasted = landed_at.url, None
        printed.append(f"[browser shows {landed_at.status_code}: {landed_at.text}]\n")
    else:
        landed = requests.get(found.group(1), allow_redirects=False, timeout=10).headers["Location"]
        pasted = answer(landed) + "\n"
    rest, _ = proc.communicate(pasted, timeout=60)
    assert proc.returncode == expect, "".join(printed) + rest
    code = re.search(r"[?&]code=([^&]+)", landed)
    return "".join(printed) + rest, code.group(1) if code else ""


@pytest.fixture
def env(sandbox, key_prefix):
    return oauth_env(sandbox, key_prefix)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_login_by_listening_then_status_refresh_logout(env, sandbox):
    env = {**env, "KEAP_REDIRECT_URI": f"http://127.0.0.1:{free_port()}/oauth/callback"}
    printed, code = cli_login(env, "--listen", "--timeout", "30", answer=None)
    assert "response_type=code" in printed and "scope=full" in printed and "state=" in printed
    assert "keap-orders is authorised" in printed and "authorised: tokens stored" in printed
    runner = CliRunner(env=env)
    status = runner.invoke(main, ["auth", "status"])
    assert status.exit_code == 0 and "access token expires: " in status.output and "paused: no" in status.output
    refreshed = runner.invoke(main, ["auth", "refresh"])
    assert refreshed.exit_code == 0 and refreshed.output.startswith("refreshed: ")
    issued = [e["response_json"] for e in sandbox.exchanges if e["template"] == "/token" and e["status"] == 200]
    assert len(issued) == 2 and sandbox.stats()["oauth"]["refreshes"] == 1
    shown = printed + status.output + refreshed.output
    assert not [t for pair in issued for t in (pair["access_token"], pair["refresh_token"]) if t in shown]
    assert runner.invoke(main, ["auth", "logout"]).output == "deleted the stored tokens\n"
    gone = runner.invoke(main, ["auth", "status"])
    assert "tokens: none stored; run `keap-orders auth login`" in gone.output and gone.exit_code == 6  # EXIT_KEAP


def test_login_by_pasting_checks_the_state_and_takes_a_bare_code(env, sandbox):
    foreign = cli_login(env, answer=lambda landed: re.sub(r"state=[^&]+", "state=someone-elses", landed), expect=1)[0]
    assert "does not belong to this login" in foreign
    bare, _ = cli_login(env, answer=lambda landed: re.search(r"code=([^&]+)", landed).group(1))
    assert "a bare code cannot be checked" in bare and "authorised: tokens stored" in bare
    used = cli_login(env, answer=lambda landed: "sandbox-authorization-code", expect=0)[0]  # the pre-issued code
    assert "authorised" in used
    again = cli_login(env, answer=lambda landed: "sandbox-authorization-code", expect=1)[0]
    assert "invalid_grant" in again and "run `keap-orders auth login` again" in again


def test_code_from_what_was_pasted():
    assert code_from("http://127.0.0.1/cb?code=abc&state=s1", "s1") == ("abc", True)
    assert code_from("  abc \n", "s1") == ("abc", False)
    with pytest.raises(LoginError, match="access_denied: no"):
        code_from("http://127.0.0.1/cb?error=access_denied&error_description=no&state=s1", "s1")
    with pytest.raises(LoginError, match="carries no code"):
        code_from("http://127.0.0.1/cb?state=s1", "s1")


def test_what_auth_says_without_its_settings(env):
    runner = CliRunner(env={**env, "KEAP_CLIENT_ID": ""})
    assert "OAuth is not configured" in runner.invoke(main, ["auth", "status"]).output
    no_key = CliRunner(env={**env, "TOKEN_ENCRYPTION_KEY": ""}).invoke(main, ["auth", "login"])
    assert no_key.exit_code == 6 and "Fernet.generate_key()" in no_key.output  # EXIT_KEAP: no credential
    assert "Fernet.generate_key()" in CliRunner().invoke(main, ["auth", "login", "--help"]).output
    listen = CliRunner(env={**env, "KEAP_REDIRECT_URI": "https://example.com/cb"}).invoke(main, ["auth", "login",
                                                                                                 "--listen"])
    assert listen.exit_code == 1 and "loopback" in listen.output
