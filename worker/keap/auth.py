"""Keap credentials for requests (service account key / PAT, OAuth bearer) and the OAuth2 token calls."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from worker.keap.errors import (
    CredentialRefused,
    KeapAuthError,
    KeapOutcomeUnknown,
    error_from_exception,
    error_from_response,
    keap_message,
)
from worker.keap.pause import CredentialPause
from worker.keap.quota import RateLimits

log = logging.getLogger(__name__)

_TOKEN_TIMEOUT = (5.0, 30.0)


class _Refusable:
    """What a credential does when Keap refuses it (401/403): `refused(error)` is the error to raise, whose text
    names the fix for this kind of credential; with a `pause`, the first refusal pauses the fleet on it (one error
    logged) and every request after it waits, unsent, until `keap-orders auth resume` lifts the pause."""

    name = "the credential"
    fix = "fix the credential"
    waiting = "waiting for a working credential"
    pause: CredentialPause | None = None

    def refused(self, error: KeapAuthError) -> CredentialRefused:
        reason = f"HTTP {error.status}" + (f": {keap_message(error.body)}" if keap_message(error.body) else "")
        if self.pause is not None and self.pause.pause(reason):
            log.error("Keap refused %s (%s): every worker pauses on it and orders wait; %s, then run "
                      "`keap-orders auth resume`", self.name, reason, self.fix)
        return CredentialRefused(f"{error.message} ({self.name}); orders wait: {self.fix}, then run "
                                 "`keap-orders auth resume`", waiting=self.waiting, status=error.status,
                                 body=error.body)

    def _check_pause(self) -> None:
        paused = self.pause.paused() if self.pause is not None else None
        if paused:
            raise CredentialRefused(f"Keap refused {self.name} ({paused.get('reason')}); orders wait: {self.fix}, "
                                    "then run `keap-orders auth resume`", waiting=self.waiting)


class ApiKeyAuth(_Refusable, AuthBase):
    """A Keap service account key or personal access token, sent as `X-Keap-API-Key`."""

    name = "the API key (KEAP_API_KEY)"
    fix = "set KEAP_API_KEY to a valid service account key or personal access token with access to orders"
    waiting = "waiting for a working API key (fix KEAP_API_KEY, then keap-orders auth resume)"

    def __init__(self, key: str, pause: CredentialPause | None = None) -> None:
        if not key or not key.strip():
            raise ValueError("empty Keap API key: set KEAP_API_KEY to a service account key or personal access token")
        self._key = key.strip()
        self.pause = pause

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self._check_pause()
        request.headers["X-Keap-API-Key"] = self._key
        return request

    def __repr__(self) -> str:
        return "ApiKeyAuth(<hidden>)"


class BearerAuth(_Refusable, AuthBase):
    """An OAuth access token, asked from `token_provider` on every request so a rotated token is used at once.

    `on_unauthorized(token)`: Keap answered 401 to a request sent with `token`; returns True when a newer token is
    available (KeapClient then sends the request once more). Without it a 401 is final (a static token, which
    pauses the fleet like an API key). With it, a 401 or 403 that is left parks the order for re-authorisation: the
    app's access was revoked (even right after a refresh) or lost a permission."""

    def __init__(self, token_provider: Callable[[], str],
                 on_unauthorized: Callable[[str], bool] | None = None, pause: CredentialPause | None = None) -> None:
        self._token_provider = token_provider
        self._on_unauthorized = on_unauthorized
        if on_unauthorized is None:
            self.name = "the access token (KEAP_ACCESS_TOKEN)"
            self.fix = "set KEAP_ACCESS_TOKEN to a valid token (or use OAuth: KEAP_CLIENT_ID, `keap-orders auth login`)"
            self.waiting = "waiting for a new access token (set KEAP_ACCESS_TOKEN, then keap-orders auth resume)"
            self.pause = pause
        else:
            self.name = "the OAuth app's access token"
            self.fix = "authorise the app again with `keap-orders auth login` (check its permissions in Keap)"
            self.waiting = CredentialRefused.waiting

    def refused(self, error: KeapAuthError) -> CredentialRefused:
        if self._on_unauthorized is None:
            return super().refused(error)
        return CredentialRefused(f"{error.message} ({self.name}); orders wait: {self.fix}", status=error.status,
                                 body=error.body)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self._check_pause()
        token = self._token_provider()
        if not token:
            raise KeapAuthError("no Keap OAuth access token available: authorize the app (exchange_code) first")
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    def renew(self, refused: requests.PreparedRequest) -> bool:
        """Keap answered 401 to `refused`: True when it is worth sending once more with a newer token."""
        sent = refused.headers.get("Authorization", "")
        if self._on_unauthorized is None or not sent.startswith("Bearer "):
            return False
        return self._on_unauthorized(sent[len("Bearer "):])

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


def exchange_code(token_url: str, client_id: str, client_secret: str, code: str, redirect_uri: str,
                  session: requests.Session | None = None) -> dict:
    """Trade an authorization code for {access_token, refresh_token, expires_in, ...}."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return _token_call(token_url, client_id, client_secret, form, session, "authorization code")


def refresh_token(token_url: str, client_id: str, client_secret: str, refresh_token: str,
                  session: requests.Session | None = None) -> dict:
    """Rotate tokens: Keap returns a new refresh token and invalidates the one sent, so persist the answer."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_call(token_url, client_id, client_secret, form, session, "refresh token")


def _token_call(token_url: str, client_id: str, client_secret: str, form: dict[str, str],
                session: requests.Session | None, what: str) -> dict:
    # Client credentials go in HTTP Basic, the grant in a form body (Keap's token endpoint; RFC 6749 §2.3.1).
    where = "POST /token"
    try:
        response = (session or requests).post(token_url, data=form, auth=HTTPBasicAuth(client_id, client_secret),
                                              headers={"Accept": "application/json"}, timeout=_TOKEN_TIMEOUT,
                                              allow_redirects=False)
    except requests.RequestException as exc:
        # A lost answer to a refresh may mean the refresh token was already rotated: OutcomeUnknown says so.
        raise error_from_exception(exc, "POST", "/token") from None
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    limits = RateLimits.from_headers(response.headers)
    log.debug("keap %s -> %s", where, response.status_code)
    if response.status_code in (400, 401, 403):
        # Keap answers a used, expired or unknown grant with 400 invalid_grant: only a new authorization helps.
        raise KeapAuthError(f"Keap refused the {what} (HTTP {response.status_code}, {where}): "
                            f"{keap_message(body) or 'no reason given'}; check the client id/secret, or re-authorize "
                            "the app", status=response.status_code, limits=limits, body=body)
    if not 200 <= response.status_code < 300:
        raise error_from_response(response.status_code, body, limits, method="POST", path="/token")
    if not isinstance(body, dict) or not body.get("access_token"):
        # The grant may have been consumed (a refresh token rotated) although no usable token came back.
        raise KeapOutcomeUnknown(f"Keap's token endpoint answered HTTP {response.status_code} without an "
                                 "access_token; the grant may have been used up", status=response.status_code,
                                 limits=limits)
    return body
