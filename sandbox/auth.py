"""Keap's credentials: the API key header, and OAuth2 tokens from `POST /token` with single-use rotating refresh tokens.

Assumption (unconfirmed for Keap): an access token stays valid until it expires even after a refresh.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs

API_KEY = "KeapAK-sandbox-key"  # the sandbox's default X-Keap-API-Key: a public test value, not a secret
SCOPE = "full|sandbox.infusionsoft.com"
REFRESH_LIFETIME = 45 * 86400  # Keap staff: refresh tokens live 45 days


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
    """One OAuth client with one pre-issued authorization code; tokens live in memory."""

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
            self._codes = {self.client["authorization_code"]}
            self._access: dict[str, _Grant] = {}
            self._refresh: dict[str, _Grant] = {}

    def credential_for(self, access_token: str) -> str | None:
        """`oauth:<client_id>` for a live access token, else None."""
        with self._lock:
            grant = self._access.get(access_token)
        if grant is None or grant.expires_at <= self.clock():
            return None
        return f"oauth:{grant.client_id}"

    def token(self, headers, body: bytes) -> dict:
        """Handle one `POST /token` (form-encoded); returns the token JSON or raises TokenError."""
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
                if form.get("redirect_uri") != self.client["redirect_uri"]:
                    raise TokenError(400, "invalid_grant", "Redirect URI mismatch")
                if code not in self._codes:
                    raise TokenError(400, "invalid_grant", "Invalid authorization code")
                self._codes.discard(code)  # single use
            elif grant_type == "refresh_token":
                grant = self._refresh.pop(form.get("refresh_token") or "", None)  # single use: rotated below
                if grant is None or grant.expires_at <= self.clock():
                    raise TokenError(400, "invalid_grant", "Invalid refresh token")
            elif not grant_type:
                raise TokenError(400, "invalid_request", "Missing parameter: grant_type")
            else:
                raise TokenError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
            return self._issue(client_id)

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
