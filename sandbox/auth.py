"""Keap's credentials: the API key header, and OAuth2: the authorize redirect, `POST /token` with single-use codes and
single-use rotating refresh tokens, a revoke switch, and counters of what the token endpoint answered.

Assumptions (unconfirmed for Keap): an access token stays valid until it expires even after a refresh; the sandbox
approves every authorize request at once (Keap shows a sign-in page and an account picker first).
"""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

API_KEY = "KeapAK-sandbox-key"  # the sandbox's default X-Keap-API-Key: a public test value, not a secret
SCOPE = "full|sandbox.infusionsoft.com"
REFRESH_LIFETIME = 45 * 86400  # Keap staff: refresh tokens live 45 days
AUTHORIZE_PATH = "/app/oauth/authorize"  # Keap's is https://accounts.infusionsoft.com/app/oauth/authorize
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class TokenError(Exception):
    """An OAuth error answer: `status` and the RFC 6749 body Keap sends."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


@dataclass
class _Grant:
    client_id: str
    expires_at: float


class OAuth:
    """One OAuth client with one pre-issued authorization code (more come from `authorize`); tokens live in memory.

    `counts`: token endpoint answers by kind (code_exchanges, refreshes, invalid_grant, other_errors) and refresh
    requests dropped because their caller hung up before the sandbox handled them (abandoned).
    """

    def __init__(self, clock: Callable[[], float], token_lifetime: int):
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.client = {
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            "authorization_code": "sandbox-authorization-code",
            "redirect_uri": "http://127.0.0.1/oauth/callback",
        }
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            # A code is bound to the redirect URI it was issued for (RFC 6749 §4.1.3).
            self._codes = {self.client["authorization_code"]: self.client["redirect_uri"]}
            self._access: dict[str, _Grant] = {}
            self._refresh: dict[str, _Grant] = {}
            self.counts: Counter = Counter()

    def revoke(self) -> int:
        """The account owner revoked the app: every access and refresh token of the client stops working."""
        with self._lock:
            revoked = len(self._access) + len(self._refresh)
            self._access.clear()
            self._refresh.clear()
            return revoked

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def counted(self) -> dict:
        with self._lock:
            return {kind: self.counts.get(kind, 0) for kind in ("code_exchanges", "refreshes", "invalid_grant",
                                                                "other_errors", "abandoned")}

    def authorize(self, query: dict) -> str:
        """`GET /app/oauth/authorize`: the redirect target with a fresh single-use code (or an OAuth error).

        The registered redirect URI is accepted, and so is any http loopback URI (for `auth login --listen` on a
        free port; Keap itself only accepts the URIs registered for the app)."""
        redirect_uri = query.get("redirect_uri") or ""
        parts = urlsplit(redirect_uri)
        if redirect_uri != self.client["redirect_uri"] and not (parts.scheme == "http"
                                                                  and parts.hostname in _LOOPBACK):
            raise TokenError(400, "invalid_request", "redirect_uri is not registered for this client")
        if query.get("client_id") != self.client["client_id"]:
            raise TokenError(400, "invalid_client", "Unknown client_id")
        state = {"state": query["state"]} if query.get("state") else {}
        if query.get("response_type") != "code" or query.get("scope") != "full":
            error = {"error": "invalid_request", "error_description": "response_type=code and scope=full required"}
            return _with_query(redirect_uri, {**error, **state})
        code = secrets.token_urlsafe(18)
        with self._lock:
            self._codes[code] = redirect_uri
        return _with_query(redirect_uri, {"code": code, **state})

    def credential_for(self, access_token: str) -> str | None:
        """`oauth:<client_id>` for a live access token, else None."""
        with self._lock:
            grant = self._access.get(access_token)
        if grant is None or grant.expires_at <= self.clock():
            return None
        return f"oauth:{grant.client_id}"

    def token(self, headers, body: bytes) -> dict:
        """Handle one `POST /token` (form-encoded); returns the token JSON or raises TokenError."""
        try:
            answer = self._token(headers, body)
        except TokenError as exc:
            self.count("invalid_grant" if exc.body["error"] == "invalid_grant" else "other_errors")
            raise
        self.count("code_exchanges" if answer.pop("_grant") == "authorization_code" else "refreshes")
        return answer

    def _token(self, headers, body: bytes) -> dict:
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, client_secret = self._client_credentials(headers, form)
        if client_id != self.client["client_id"] or client_secret != self.client["client_secret"]:
            raise TokenError(401, "invalid_client", "Invalid client credentials")
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                code = form.get("code")
                if not code:
                    raise TokenError(400, "invalid_request", "Missing parameter: code")
                if code not in self._codes:
                    raise TokenError(400, "invalid_grant", "Invalid authorization code")
                if form.get("redirect_uri") != self._codes[code]:
                    raise TokenError(400, "invalid_grant", "Redirect URI mismatch")
                del self._codes[code]  # single use
            elif grant_type == "refresh_token":
                grant = self._refresh.pop(form.get("refresh_token") or "", None)  # single use: rotated below
                if grant is None or grant.expires_at <= self.clock():
                    raise TokenError(400, "invalid_grant", "Invalid refresh token")
            elif not grant_type:
                raise TokenError(400, "invalid_request", "Missing parameter: grant_type")
            else:
                raise TokenError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
            return {**self._issue(client_id), "_grant": grant_type}

    def _issue(self, client_id: str) -> dict:
        now = self.clock()
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._access[access] = _Grant(client_id, now + self.token_lifetime)
        self._refresh[refresh] = _Grant(client_id, now + REFRESH_LIFETIME)
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.token_lifetime,
                "token_type": "bearer", "scope": SCOPE}

    @staticmethod
    def _client_credentials(headers, form: dict) -> tuple[str | None, str | None]:
        authorization = headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise TokenError(401, "invalid_client", "Malformed Basic authorization header") from None
            client_id, _, client_secret = decoded.partition(":")
            return client_id, client_secret
        return form.get("client_id"), form.get("client_secret")


def _with_query(url: str, params: dict) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)
