"""Credentials (API key, OAuth tokens with rotating refresh tokens) and Keap's limits with x-keap headers."""
from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.limits import THROTTLED_BODY, Limits
from sandbox.server import Sandbox
from tests.sandbox.conftest import Api, Clock


def token(sb, auth=None, **form):
    return requests.post(sb.url + "/token", data=form, auth=auth, timeout=10)


def test_api_key_and_401_shape(sandbox):
    assert Api(sandbox).get("/orders/model").status_code == 200
    for headers in ({}, {"X-Keap-API-Key": "KeapAK-wrong"}, {"Authorization": "Bearer nope"}):
        response = Api(sandbox, headers=headers).get("/orders/model")
        assert response.status_code == 401
        assert response.json()["code"] == 401 and response.json()["status"] == "UNAUTHENTICATED"


def test_oauth_code_single_use_and_refresh_rotation(sandbox):
    client = sandbox.oauth_client
    creds = (client["client_id"], client["client_secret"])
    first = token(sandbox, grant_type="authorization_code", code=client["authorization_code"],
                  redirect_uri=client["redirect_uri"], client_id=creds[0], client_secret=creds[1])
    assert first.status_code == 200
    tokens = first.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 86400 and tokens["scope"].startswith("full")
    reused_code = token(sandbox, grant_type="authorization_code", code=client["authorization_code"],
                        redirect_uri=client["redirect_uri"], client_id=creds[0], client_secret=creds[1])
    assert reused_code.status_code == 400 and reused_code.json()["error"] == "invalid_grant"
    bearer = Api(sandbox, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert bearer.get("/orders/model").status_code == 200

    rotated = token(sandbox, auth=creds, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != tokens["refresh_token"]
    reuse = token(sandbox, auth=creds, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    assert token(sandbox, auth=("sandbox-client", "wrong"), grant_type="refresh_token",
                 refresh_token=rotated.json()["refresh_token"]).status_code == 401
    third = token(sandbox, auth=creds, grant_type="refresh_token", refresh_token=rotated.json()["refresh_token"])
    assert third.status_code == 200
    stats = sandbox.stats()
    assert stats["max_per_second"] == {"oauth:sandbox-client": 1}  # labels, never the token


def test_access_token_expires():
    clock = Clock(1_800_000_000.0)
    with Sandbox(limits="off", token_lifetime=60, clock=clock) as sb:
        client = sb.oauth_client
        tokens = token(sb, grant_type="authorization_code", code=client["authorization_code"],
                       redirect_uri=client["redirect_uri"], client_id=client["client_id"],
                       client_secret=client["client_secret"]).json()
        assert tokens["expires_in"] == 60
        bearer = Api(sb, headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert bearer.get("/orders/model").status_code == 200
        clock.now += 61
        assert bearer.get("/orders/model").status_code == 401


def test_limits_parse():
    assert Limits.parse("sak") == Limits(10, 240, 30000)
    assert Limits.parse("oauth") == Limits(25, 1500, 150000)
    assert Limits.parse("20/s,600/min,5000/day") == Limits(20, 600, 5000)
    assert Limits.parse("off") is None
    with pytest.raises(ValueError, match="bad limits"):
        Limits.parse("fast")


def test_sak_spike_gives_429_with_keap_body_and_headers():
    # A frozen clock puts all 20 concurrent calls in one second however loaded the machine is.
    with Sandbox(limits="sak", clock=Clock(1_800_000_000.0)) as sb:
        api = Api(sb)
        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(lambda _: api.get("/products", params={"page_size": 1}), range(20)))
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 10 and statuses.count(429) == 10, statuses  # 10/s spike arrest
        throttled = next(r for r in responses if r.status_code == 429)
        assert throttled.json() == THROTTLED_BODY
        for response in responses:
            headers = response.headers
            assert headers["x-keap-product-throttle-limit"] == "240"
            assert headers["x-keap-product-throttle-time-unit"] == "minute"
            assert headers["x-keap-product-throttle-interval"] == "1"
            assert headers["x-keap-product-quota-limit"] == "30000"
            assert headers["x-keap-product-quota-time-unit"] == "day"
            assert headers["x-keap-product-spike-limit"] == "10"
            assert int(headers["x-keap-product-throttle-available"]) + int(
                headers["x-keap-product-throttle-used"]) == 240
        # 429s consume nothing: used counts only the accepted calls.
        assert max(int(r.headers["x-keap-product-quota-used"]) for r in responses) == statuses.count(200)
        stats = sb.stats()
        assert stats["throttled_429"] == statuses.count(429) and stats["max_per_second"]["api-key"] == 20


def test_minute_window_rolls_and_daily_quota_resets_at_utc_midnight():
    start = dt.datetime(2026, 3, 9, 23, 59, 0, tzinfo=dt.timezone.utc).timestamp()
    clock = Clock(start)
    with Sandbox(limits="100/s,2/min,3/day", clock=clock) as sb:
        api = Api(sb)
        assert [api.get("/orders/model").status_code for _ in range(3)] == [200, 200, 429]
        clock.now += 61  # the rolling minute frees up; now 00:00:01 on the next day
        first = api.get("/orders/model")
        assert first.status_code == 200 and first.headers["x-keap-product-quota-used"] == "1"
        midnight = dt.datetime(2026, 3, 11, tzinfo=dt.timezone.utc).timestamp() * 1000
        assert first.headers["x-keap-product-quota-expiry-time"] == str(int(midnight))
        clock.now += 61
        assert [api.get("/orders/model").status_code for _ in range(3)] == [200, 200, 429]  # day quota of 3
        clock.now += 61
        exhausted = api.get("/orders/model")
        assert exhausted.status_code == 429 and exhausted.headers["x-keap-product-quota-available"] == "0"
        clock.now = midnight / 1000 + 1
        assert api.get("/orders/model").status_code == 200


def test_the_account_limit_is_shared_by_every_credential_with_tenant_headers():
    # Keap's per-account ("tenant") window since June 2026: an API key and an OAuth app of one account share it.
    with Sandbox(limits="100/s,100/min", tenant_limits="3/min,1000/day", clock=Clock(1_800_000_000.0)) as sb:
        client = sb.oauth_client
        tokens = token(sb, grant_type="authorization_code", code=client["authorization_code"],
                       redirect_uri=client["redirect_uri"], client_id=client["client_id"],
                       client_secret=client["client_secret"]).json()
        key, bearer = Api(sb), Api(sb, headers={"Authorization": f"Bearer {tokens['access_token']}"})
        answers = [key.get("/orders/model"), bearer.get("/orders/model"), key.get("/orders/model"),
                   bearer.get("/orders/model")]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        last = answers[-1]
        assert last.json() == THROTTLED_BODY
        assert last.headers["x-keap-tenant-id"] == "sandbox.infusionsoft.com"
        assert last.headers["x-keap-tenant-throttle-limit"] == "3"
        assert last.headers["x-keap-tenant-throttle-available"] == "0"
        assert last.headers["x-keap-tenant-quota-used"] == "3"
        # The credential's own window is far from full: only the account's says no.
        assert last.headers["x-keap-product-throttle-available"] == "99"
        activity = sb.stats()["activity"]
        assert activity["tenant:sandbox.infusionsoft.com"]["max_per_minute"] == 4
        assert activity["api-key"]["max_per_minute"] == 2


def test_tenant_limits_can_be_switched_off():
    with Sandbox(limits="off", tenant_limits="off") as sb:
        answer = Api(sb).get("/orders/model")
        assert answer.status_code == 200 and not any(h.startswith("x-keap-") for h in answer.headers)


def authorize(sb, **params):
    query = {"client_id": "sandbox-client", "redirect_uri": "http://127.0.0.1:8765/cb", "response_type": "code",
             "scope": "full", "state": "st", **params}
    return requests.get(sb.url + "/app/oauth/authorize", params=query, allow_redirects=False, timeout=10)


def test_authorize_redirects_with_a_single_use_code_bound_to_its_redirect_uri(sandbox):
    answer = authorize(sandbox)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("http://127.0.0.1:8765/cb?code=") and location.endswith("&state=st")
    code = location.split("code=")[1].split("&")[0]
    creds = ("sandbox-client", "sandbox-secret")
    wrong_uri = token(sandbox, auth=creds, grant_type="authorization_code", code=code,
                      redirect_uri=sandbox.oauth_client["redirect_uri"])
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error_description"] == "Redirect URI mismatch"
    first = token(sandbox, auth=creds, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:8765/cb")
    again = token(sandbox, auth=creds, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:8765/cb")
    assert first.status_code == 200 and again.json()["error"] == "invalid_grant"

    assert authorize(sandbox, redirect_uri="https://evil.example/cb").status_code == 400  # not registered, not loopback
    assert authorize(sandbox, client_id="other").json()["error"] == "invalid_client"
    refused = authorize(sandbox, scope="email")
    assert refused.status_code == 302 and "error=invalid_request" in refused.headers["Location"]


def test_revoke_kills_every_token_and_the_counters_say_what_the_token_endpoint_answered(sandbox):
    creds = ("sandbox-client", "sandbox-secret")
    client = sandbox.oauth_client
    tokens = token(sandbox, auth=creds, grant_type="authorization_code", code=client["authorization_code"],
                   redirect_uri=client["redirect_uri"]).json()
    rotated = token(sandbox, auth=creds, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert requests.post(sandbox.url + "/__sandbox__/revoke", timeout=10).json()["revoked_tokens"] == 3
    for access in (tokens["access_token"], rotated["access_token"]):
        assert Api(sandbox, headers={"Authorization": f"Bearer {access}"}).get("/orders/model").status_code == 401
    assert token(sandbox, auth=creds, grant_type="refresh_token",
                 refresh_token=rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert token(sandbox, auth=("sandbox-client", "wrong"), grant_type="refresh_token").status_code == 401
    stats = requests.get(sandbox.url + "/__sandbox__/stats", timeout=10).json()
    assert stats["oauth"] == {"code_exchanges": 1, "refreshes": 1, "invalid_grant": 1, "other_errors": 1,
                              "abandoned": 0}
    sandbox.reset()
    assert sandbox.stats()["oauth"]["refreshes"] == 0


def test_a_slow_token_request_whose_caller_hung_up_is_never_applied(sandbox):
    client = sandbox.oauth_client
    tokens = token(sandbox, grant_type="authorization_code", code=client["authorization_code"],
                   redirect_uri=client["redirect_uri"], client_id="sandbox-client", client_secret="sandbox-secret").json()
    sandbox.set_faults(latency_ms=800, routes=["POST /token"])
    with pytest.raises(requests.Timeout):  # the caller gives up (as a killed process would) and closes
        requests.post(sandbox.url + "/token", auth=("sandbox-client", "sandbox-secret"), timeout=0.3,
                      data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    time.sleep(1.0)
    assert sandbox.stats()["oauth"]["abandoned"] == 1
    sandbox.set_faults()
    assert token(sandbox, auth=("sandbox-client", "sandbox-secret"), grant_type="refresh_token",
                 refresh_token=tokens["refresh_token"]).status_code == 200  # the refresh token was not used up


def test_token_ttl_option():
    from click.testing import CliRunner

    from admin.cli import main
    from sandbox.__main__ import main as sandbox_main

    assert "--token-ttl" in CliRunner().invoke(main, ["sandbox", "--help"]).output
    with pytest.raises(SystemExit):
        sandbox_main(["--token-ttl", "soon"])
