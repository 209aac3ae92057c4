"""Console logins: PBKDF2 hashes in CONSOLE_USERS, `keap-orders console-user`, and the signed session cookie."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from admin.web.console.users import Sessions, User, check_password, hash_password, parse_users

ROOT = Path(__file__).resolve().parents[2]


def test_console_user_prints_an_entry_with_a_hash_never_the_password():
    done = subprocess.run([sys.executable, "-m", "admin.cli", "console-user", "carol", "--role", "read-only"],
                          input="s3cret-enough\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    entry = done.stdout.strip()
    assert "s3cret-enough" not in entry and entry.startswith("carol:pbkdf2-sha256.") and entry.endswith(":read-only")
    users = parse_users(entry)
    assert check_password("s3cret-enough", users["carol"][0]) and not check_password("s3cret-enougH", users["carol"][0])


def test_a_malformed_users_setting_says_what_an_entry_looks_like():
    with pytest.raises(ValueError, match="name:hash:role"):
        parse_users("dave:plaintext:admin")


def test_a_session_cookie_is_signed_and_ends_with_its_user():
    users = {"erin": (hash_password("password1", iterations=1000), "admin")}
    sessions = Sessions("k" * 32, users)
    assert sessions.login("erin", "password2") is None and sessions.login("nobody", "password1") is None
    cookie = sessions.cookie(sessions.login("erin", "password1"))
    user, csrf = sessions.read(cookie)
    assert user == User("erin", "admin") and len(csrf) > 20
    payload, signature = cookie.rsplit(".", 1)
    assert sessions.read(payload + "." + "0" * len(signature)) is None  # tampered
    assert Sessions("other-key" * 4, users).read(cookie) is None  # signed with another key
    users["erin"] = (users["erin"][0], "read-only")  # a changed role ends the session
    assert sessions.read(cookie) is None
