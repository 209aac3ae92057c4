"""OAuth tokens for the fleet against real Redis and the sandbox's token endpoint over HTTP: encryption at rest, one
refresh however many threads and processes ask, a refresher killed mid-call, 401 → refresh → retry, and a refused
grant that pauses every worker until a new login."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.conftest import REDIS_URL
from worker import keeper
from worker.context import keap_client, oauth_tokens
from worker.keap import CredentialRevoked, KeapClient
from worker.keap.tokens import TokenStore, fingerprint
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KEY = Fernet.generate_key().decode()


def oauth_env(sb, prefix: str, **extra: str) -> dict[str, str]:
    """A worker's environment for OAuth against this sandbox, under the test's key prefix."""
    return {"REDIS_URL": REDIS_URL, "KEY_PREFIX": prefix, "KEAP_BASE_URL": sb.base_url, "RATE_LIMITS": "off",
            "KEAP_CLIENT_ID": "sandbox-client", "KEAP_CLIENT_SECRET": "sandbox-secret",
            "KEAP_REDIRECT_URI": sb.oauth_client["redirect_uri"], "KEAP_TOKEN_URL": sb.url + "/token",
            "KEAP_AUTHORIZE_URL": sb.url + "/app/oauth/authorize", "TOKEN_ENCRYPTION_KEY": KEY,
            "LEASE_SECONDS": "2", **extra}


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{name.lower(): value for name, value in env.items()})


def login(tokens, sb):
    client = sb.oauth_client
    return tokens.authorize(client["authorization_code"], client["redirect_uri"])


def fresh_code(sb) -> str:
    """A new code from the sandbox's authorize page (the pre-issued one is single use)."""
    answer = requests.get(sb.url + "/app/oauth/authorize", allow_redirects=False, timeout=10,
                          params={"client_id": "sandbox-client", "redirect_uri": sb.oauth_client["redirect_uri"],
                                  "response_type": "code", "scope": "full", "state": "s"})
    assert answer.status_code == 302
    return requests.utils.urlparse(answer.headers["Location"]).query.split("code=")[1].split("&")[0]


@pytest.fixture
def oauth(start_sandbox, key_prefix):
    """(sandbox with 1-hour tokens, settings env, logged-in OAuthTokens)."""
    sb = start_sandbox(limits="off", token_lifetime=3600)
    env = oauth_env(sb, key_prefix)
    tokens = oauth_tokens(settings_of(env))
    login(tokens, sb)
    return sb, env, tokens


def test_the_pair_is_encrypted_at_rest_and_never_shown(oauth, redis_client, key_prefix):
    sb, env, tokens = oauth
    pair = tokens.store.read()[0]
    raw = redis_client.get(f"{key_prefix}:oauth:sandbox-client:pair")
    assert pair.access_token.encode() not in raw and pair.refresh_token.encode() not in raw
    for shown in (repr(pair), repr(tokens), repr(tokens.store), repr(tokens.app), json.dumps(tokens.status())):
        assert pair.access_token not in shown and pair.refresh_token not in shown and "sandbox-secret" not in shown

    # Key rotation: a new key first, the old one still decrypts; a store without the old key cannot read it.
    new_key = Fernet.generate_key().decode()
    rotated = TokenStore(redis_client, f"{new_key},{KEY}", f"{key_prefix}:oauth:sandbox-client")
    assert rotated.read()[0] == pair
    with pytest.raises(CredentialRevoked, match="cannot be decrypted") as info:
        TokenStore(redis_client, new_key, f"{key_prefix}:oauth:sandbox-client").read()
    assert new_key not in str(info.value) and KEY not in str(info.value)
    with pytest.raises(ValueError, match="not a Fernet key") as bad:
        TokenStore(redis_client, "not-a-key", "x")
    assert "not-a-key" not in str(bad.value)


def test_many_threads_and_two_processes_refresh_once(start_sandbox, key_prefix, redis_client):
    # Tokens live 1 s; every caller finds the token expired (or got a 401 with it) at the same moment. The token
    # endpoint is slow (0.3 s), so all of them are asking while the one refresh is under way.
    sb = start_sandbox(limits="off", token_lifetime=1)
    env = oauth_env(sb, key_prefix)
    tokens = oauth_tokens(settings_of(env))
    old = login(tokens, sb)
    sb.set_faults(latency_ms=300, routes=["POST /token"])
    start_at = time.time() + 4.0  # after the processes have imported everything
    procs = [subprocess.Popen([sys.executable, "-m", "tests.keap.token_proc", "race", "8", str(start_at),
                               fingerprint(old.access_token)], cwd=ROOT, env={**os.environ, **env},
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    from tests.keap.token_proc import race

    here = race(tokens, 8, start_at, fingerprint(old.access_token))
    ended = here + [fp for p in procs for fp in json.loads(p.communicate(timeout=90)[0])]

    stored = tokens.store.read()[0]
    assert len(ended) == 24 and set(ended) == {fingerprint(stored.access_token)}, ended
    assert stored.access_token != old.access_token
    counts = sb.stats()["oauth"]
    assert counts["refreshes"] == 1 and counts["invalid_grant"] == 0, counts


def test_a_refresher_killed_mid_call_is_taken_over_without_losing_the_grant(oauth, key_prefix, redis_client):
    sb, env, tokens = oauth
    old = tokens.store.read()[0]
    sb.set_faults(latency_ms=4000, routes=["POST /token"])
    proc = subprocess.Popen([sys.executable, "-m", "tests.keap.token_proc", "refresh"], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "refreshing"
    lease = f"{key_prefix}:lease:oauth-refresh:sandbox-client"
    deadline = time.monotonic() + 20
    while not redis_client.exists(lease):
        assert time.monotonic() < deadline, "the refresher never took the lease"
        time.sleep(0.05)
    time.sleep(0.5)  # its refresh request is at the (slow) token endpoint now
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    sb.set_faults()

    started = time.monotonic()
    assert tokens.after_unauthorized(old.access_token)  # waits for the dead holder's lease, then refreshes
    assert time.monotonic() - started < env_lease(env) + 3
    time.sleep(4)  # the killed process's request finishes its latency and is dropped: its caller is gone

    counts = sb.stats()["oauth"]
    assert counts == {**counts, "refreshes": 1, "invalid_grant": 0, "abandoned": 1}, counts
    client = keap_client(settings_of(env), redis_client)
    assert client.contacts.get("1")["id"] == "1"  # the stored pair works
    assert tokens.store.read()[0].refresh_token != old.refresh_token


def env_lease(env) -> float:
    return float(env["LEASE_SECONDS"])


def test_a_401_refreshes_once_and_the_request_is_sent_again(start_sandbox, key_prefix, redis_client):
    sb = start_sandbox(limits="off", token_lifetime=1)
    env = oauth_env(sb, key_prefix)
    tokens = oauth_tokens(settings_of(env))
    pair = login(tokens, sb)
    # Our clock believes the token is good for an hour; the sandbox expires it after 1 s (clock skew, early revoke).
    tokens.store.save(replace(pair, expires_at=pair.expires_at + 3600, lifetime=3600))
    time.sleep(1.2)
    client = keap_client(settings_of(env), redis_client)
    assert client.contacts.get("1")["id"] == "1"
    stats = sb.stats()
    assert stats["requests"]["GET /rest/v2/contacts/{contact_id} 401"] == 1
    assert stats["requests"]["GET /rest/v2/contacts/{contact_id} 200"] == 1
    assert stats["oauth"]["refreshes"] == 1


def test_refresh_ahead_of_expiry_and_at_least_every_30_days(oauth):
    sb, env, tokens = oauth
    pair, _, now = tokens.store.read()
    assert not tokens.refresh_if_due()
    tokens.store.save(replace(pair, refreshed_at=now - 31 * 86400))  # idle for a month, access token still good
    assert tokens.refresh_if_due() and not tokens.refresh_if_due()
    pair = tokens.store.read()[0]
    tokens.store.save(replace(pair, expires_at=now + 300))  # less than 10 % of its hour left
    assert tokens.access_token() != pair.access_token
    assert sb.stats()["oauth"]["refreshes"] == 2


def test_a_refused_grant_pauses_every_caller_without_calling_keap_until_a_new_login(oauth, caplog):
    sb, env, tokens = oauth
    old = tokens.store.read()[0]
    requests.post(sb.url + "/__sandbox__/revoke", timeout=10).raise_for_status()
    client = keap_client(settings_of(env), tokens.store.redis)
    outcomes: list[str] = []

    def call() -> None:
        try:
            client.contacts.get("1")
            outcomes.append("ok")
        except CredentialRevoked:
            outcomes.append("revoked")

    with caplog.at_level(logging.INFO, logger="worker.keap.tokens"):
        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert outcomes == ["revoked"] * 8
    counts = sb.stats()["oauth"]
    assert counts["invalid_grant"] == 1 and counts["refreshes"] == 0, counts  # one refresh reached Keap
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(alerts) == 1 and "keap-orders auth login" in alerts[0].getMessage()

    # Paused: no token request reaches Keap any more, neither from a request nor from the keeper.
    calls = sb.stats()["total"] + sum(sb.stats()["oauth"].values())
    for _ in range(5):
        with pytest.raises(CredentialRevoked, match="auth login"):
            client.contacts.get("1")
        keeper.keep_tokens(tokens)
    assert sb.stats()["total"] + sum(sb.stats()["oauth"].values()) == calls
    assert tokens.status()["paused"]["reason"] == "invalid_grant: Invalid refresh token"

    tokens.authorize(fresh_code(sb), sb.oauth_client["redirect_uri"])
    assert tokens.status()["paused"] is None
    assert client.contacts.get("1")["id"] == "1"
    assert tokens.store.read()[0].refresh_token != old.refresh_token


def test_a_refresh_that_lost_a_race_does_not_pause_a_live_grant(oauth):
    # A holder paused longer than its lease: another process refreshed meanwhile, so the refresh token this one
    # sends is refused. The stored pair is newer, so the fleet is not paused.
    sb, env, tokens = oauth
    stale = tokens.store.read()[0]
    tokens.refresh()
    from worker.keap.auth import refresh_token as rotate

    with pytest.raises(Exception) as refused:
        rotate(sb.url + "/token", "sandbox-client", "sandbox-secret", stale.refresh_token)
    assert tokens._refused(stale, refused.value) == tokens.store.read()[0]
    assert tokens.status()["paused"] is None


def test_static_access_token_and_missing_settings(start_sandbox, key_prefix):
    sb = start_sandbox(limits="off")
    env = oauth_env(sb, key_prefix)
    from worker.context import NoCredential, credential

    with pytest.raises(NoCredential, match="TOKEN_ENCRYPTION_KEY"):
        credential(settings_of({**env, "TOKEN_ENCRYPTION_KEY": ""}))
    with pytest.raises(NoCredential, match="KEAP_CLIENT_SECRET"):
        credential(settings_of({**env, "KEAP_CLIENT_SECRET": ""}))
    auth, profile, owner = credential(settings_of(env))
    assert profile == "oauth" and owner == "oauth-sandbox-client"  # the app, never a token
    with pytest.raises(CredentialRevoked, match="no OAuth tokens stored"):
        KeapClient(sb.base_url, auth).contacts.get("1")
