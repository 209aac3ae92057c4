"""OAuth against the sandbox's token endpoint: code exchange, bearer calls, single-use rotating refresh tokens."""
import pytest

from worker.keap import (
    BearerAuth,
    KeapAuthError,
    KeapClient,
    exchange_code,
    refresh_token,
)


@pytest.fixture
def oauth(sandbox):
    c = sandbox.oauth_client
    return {"token_url": sandbox.url + "/token", "client_id": c["client_id"], "client_secret": c["client_secret"]}


def test_exchange_then_bearer_calls_then_rotation(sandbox, session, oauth):
    code = sandbox.oauth_client
    tokens = exchange_code(**oauth, code=code["authorization_code"], redirect_uri=code["redirect_uri"],
                           session=session)
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"]
    current = dict(tokens)
    client = KeapClient(sandbox.base_url, BearerAuth(lambda: current["access_token"]), session=session)
    assert client.contacts.get("1")["id"] == "1"

    rotated = refresh_token(**oauth, refresh_token=tokens["refresh_token"], session=session)
    assert rotated["refresh_token"] != tokens["refresh_token"]
    current.update(rotated)
    assert client.contacts.get("1")["id"] == "1"  # the provider is asked on every call

    with pytest.raises(KeapAuthError) as info:
        refresh_token(**oauth, refresh_token=tokens["refresh_token"], session=session)  # single use
    assert info.value.status == 400 and "invalid_grant" in info.value.message
    assert tokens["refresh_token"] not in info.value.message and oauth["client_secret"] not in info.value.message


def test_a_used_code_and_a_wrong_secret_are_auth_errors(sandbox, session, oauth):
    code = sandbox.oauth_client
    exchange_code(**oauth, code=code["authorization_code"], redirect_uri=code["redirect_uri"], session=session)
    with pytest.raises(KeapAuthError, match="invalid_grant"):
        exchange_code(**oauth, code=code["authorization_code"], redirect_uri=code["redirect_uri"], session=session)
    with pytest.raises(KeapAuthError) as info:
        exchange_code(**{**oauth, "client_secret": "wrong-secret"}, code="x", redirect_uri=code["redirect_uri"])
    assert info.value.status == 401 and "wrong-secret" not in info.value.message


def test_bearer_with_no_token_yet_fails_clearly(sandbox, session):
    client = KeapClient(sandbox.base_url, BearerAuth(lambda: ""), session=session)
    with pytest.raises(KeapAuthError, match="exchange_code"):
        client.contacts.get("1")
