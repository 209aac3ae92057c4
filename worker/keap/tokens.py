"""OAuth tokens shared by every worker on every host: one encrypted pair in Redis, refreshed by one process at a time.

Keap's refresh tokens are single-use: the refresh that wins rotates the token, and a second refresh sent with the old
one gets `invalid_grant`. So a refresh takes a lease, reads the pair again (another process may have refreshed while
it waited), rotates it and stores the new pair before anyone uses it. A grant Keap refuses pauses the fleet: a flag
beside the pair makes every token request raise CredentialRevoked at once, until `keap-orders auth login`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import redis
import requests
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from worker import lua
from worker.keap.auth import exchange_code
from worker.keap.auth import refresh_token as rotate_grant
from worker.keap.errors import (
    CredentialRevoked,
    KeapAuthError,
    KeapOutcomeUnknown,
    KeapTransientError,
    keap_message,
)

log = logging.getLogger(__name__)

REFRESH_TOKEN_LIFETIME = 45 * 86400  # Keap staff: a refresh token lives 45 days (keap-api.md §6.1)
LOGIN = "keap-orders auth login"

# Stores a pair and lifts a pause its losing twin raised; KEYS/ARGV at the top of lua/save_pair.lua.
_SAVE = lua.load("worker.keap", "save_pair")

# How an operator makes a TOKEN_ENCRYPTION_KEY (said wherever one is missing).
MAKE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class LeaseFactory(Protocol):
    def __call__(self, name: str, seconds: float, wait: float) -> AbstractContextManager[Any]:
        """Hold a lease (renewed while held; `.lost` is set if it ran out) or raise TimeoutError after `wait`."""


@dataclass(frozen=True)
class OAuthApp:
    """The Keap OAuth app (client) whose tokens these are."""

    client_id: str
    client_secret: str = field(repr=False)
    token_url: str = "https://api.infusionsoft.com/token"


@dataclass(frozen=True)
class TokenPair:
    """An access token and the refresh token that replaces it. Times: Redis server time, seconds since the epoch."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # of the access token, counted from just before the request that got it
    lifetime: float  # expires_in
    refreshed_at: float  # when Keap issued this pair (login or refresh)
    authorized_at: float  # when `auth login` started this grant

    @classmethod
    def issued(cls, answer: dict, sent_at: float, authorized_at: float | None = None) -> TokenPair:
        if not answer.get("refresh_token"):
            raise KeapOutcomeUnknown("Keap's token endpoint answered without a refresh_token; the grant may have "
                                     f"been used up: run `{LOGIN}` if requests start failing")
        lifetime = float(answer.get("expires_in") or 86400)
        return cls(answer["access_token"], answer["refresh_token"], sent_at + lifetime, lifetime, sent_at,
                   authorized_at if authorized_at is not None else sent_at)

    @property
    def refresh_expires_at(self) -> float:
        return self.refreshed_at + REFRESH_TOKEN_LIFETIME


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh before anything fails: `ahead` of the access token's life is left (at most `ahead_max`
    seconds), or `every` seconds have passed since the last refresh (keeps an idle grant's refresh token alive)."""

    ahead: float = 0.1
    ahead_max: float = 7200.0
    every: float = 30 * 86400.0

    def due(self, pair: TokenPair, now: float) -> bool:
        margin = min(pair.lifetime * self.ahead, self.ahead_max)
        return now >= pair.expires_at - margin or now >= pair.refreshed_at + self.every


def fingerprint(secret: str) -> str:
    """A one-way name for a token (to compare tokens without storing or logging them)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class TokenStore:
    """The pair in Redis, encrypted with Fernet, and the fleet's pause flag beside it.

    `keys`: Fernet keys; the first encrypts, every one decrypts (so a key can be rotated)."""

    def __init__(self, client: redis.Redis, keys: str | Sequence[str], namespace: str) -> None:
        keys = [k.strip() for k in (keys.split(",") if isinstance(keys, str) else keys) if k.strip()]
        if not keys:
            raise ValueError("no token encryption key: set TOKEN_ENCRYPTION_KEY (see `keap-orders auth login --help`)")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            # Fernet's own message is generic; never echo the key.
            raise ValueError("TOKEN_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); make one "
                             "with `keap-orders auth login --help`") from None
        self.redis = client
        self.namespace = namespace
        self._pair_key, self._paused_key = f"{namespace}:pair", f"{namespace}:paused"
        self._save = client.register_script(_SAVE)
        self._last: tuple[bytes, TokenPair] | None = None  # decrypting costs more than the Redis read

    def __repr__(self) -> str:
        return f"TokenStore({self.namespace!r})"

    def read(self) -> tuple[TokenPair | None, dict | None, float]:
        """(the pair or None, the pause flag or None, Redis server time) in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self._pair_key)
        pipe.get(self._paused_key)
        pipe.time()
        raw, paused, (seconds, micros) = pipe.execute()
        return self._decrypt(raw), (json.loads(paused) if paused else None), seconds + micros / 1e6

    def save(self, pair: TokenPair, replaced: TokenPair | None = None) -> bool:
        """Store a refreshed pair; True when that lifted a pause (see lua/save_pair.lua)."""
        grant = fingerprint(replaced.refresh_token) if replaced else ""
        return bool(self._save(keys=[self._pair_key, self._paused_key], args=[self._encrypt(pair), grant]))

    def start_over(self, pair: TokenPair) -> None:
        """A new grant (`auth login`): store its pair and lift any pause, together."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._pair_key, self._encrypt(pair))
        pipe.delete(self._paused_key)
        pipe.execute()

    def delete(self) -> bool:
        return bool(self.redis.delete(self._pair_key, self._paused_key))

    def pause(self, reason: str, grant: str, now: float) -> bool:
        """Raise the fleet's pause flag; True for the one caller that raised it (it alerts)."""
        flag = json.dumps({"since": now, "reason": reason, "grant": grant})
        return bool(self.redis.set(self._paused_key, flag, nx=True))

    def _encrypt(self, pair: TokenPair) -> bytes:
        return self._fernet.encrypt(json.dumps(asdict(pair)).encode())

    def _decrypt(self, raw: bytes | None) -> TokenPair | None:
        if raw is None:
            return None
        if self._last is not None and self._last[0] == raw:
            return self._last[1]
        try:
            pair = TokenPair(**json.loads(self._fernet.decrypt(raw)))
        except InvalidToken:
            raise CredentialRevoked("the stored OAuth tokens cannot be decrypted with TOKEN_ENCRYPTION_KEY (was "
                                    f"the key changed?): set the key they were stored with, or run `{LOGIN}`") from None
        self._last = (raw, pair)
        return pair


class OAuthTokens:
    """Hands out the current access token (BearerAuth asks on every request) and refreshes it for the whole fleet,
    one refresh at a time: ahead of expiry, on a 401, from the keeper, or when an operator asks."""

    def __init__(self, store: TokenStore, app: OAuthApp, lease: LeaseFactory, *,
                 policy: RefreshPolicy = RefreshPolicy(), lease_seconds: float = 15.0, wait_seconds: float = 45.0,
                 session: requests.Session | None = None, on_resume: Callable[[], Any] | None = None) -> None:
        self.store, self.app, self.policy = store, app, policy
        self._lease, self._lease_name = lease, f"oauth-refresh:{app.client_id}"
        self.lease_seconds, self.wait_seconds = lease_seconds, wait_seconds
        self.session = session or requests.Session()
        self.on_resume = on_resume

    def __repr__(self) -> str:
        return f"OAuthTokens({self.app.client_id!r})"

    # what requests and the keeper call ------------------------------------------------------------------
    def access_token(self) -> str:
        """The token for the next request; refreshes first when it is due."""
        pair, paused, now = self.store.read()
        pair = _usable(pair, paused)
        if not self.policy.due(pair, now):
            return pair.access_token
        if now < pair.expires_at - 1.0:
            # Still good: refresh unless another process is at it already, then go on with this one.
            return self._refresh(None, wait=0.0, fallback=pair)[0].access_token
        return self._refresh(None, wait=self.wait_seconds)[0].access_token

    def after_unauthorized(self, used: str) -> bool:
        """Keap answered 401 to a request sent with `used`: refresh it unless another process has. True when a
        different token is now stored (the request is worth sending once more)."""
        pair, _ = self._refresh(used, wait=self.wait_seconds)
        return pair.access_token != used

    def refresh_if_due(self) -> bool:
        """The keeper's check on every pass: True when it refreshed."""
        pair, paused, now = self.store.read()
        if paused or pair is None or not self.policy.due(pair, now):
            return False
        return self._refresh(None, wait=0.0, fallback=pair)[1]

    # what an operator calls ---------------------------------------------------------------------------------
    def refresh(self) -> TokenPair:
        """Refresh now, whether due or not (`auth refresh`)."""
        return self._refresh(None, wait=self.wait_seconds, force=True)[0]

    def authorize(self, code: str, redirect_uri: str) -> TokenPair:
        """Trade an authorization code for a new grant, store it and lift a pause (`auth login`). Under the refresh
        lease, so a refresh of the old grant that is under way cannot overwrite the new pair."""
        with self._lease(self._lease_name, self.lease_seconds, self.wait_seconds):
            now = self.store.read()[2]
            answer = exchange_code(self.app.token_url, self.app.client_id, self.app.client_secret, code,
                                   redirect_uri, session=self.session)
            pair = TokenPair.issued(answer, sent_at=now)
            self.store.start_over(pair)
        log.info("oauth %s: authorised; access token valid for %ds", self.app.client_id, int(pair.lifetime))
        return pair

    def forget(self) -> bool:
        """Delete the stored pair (`auth logout`): requests wait for re-authorisation from now on."""
        return self.store.delete()

    def status(self) -> dict[str, Any]:
        """What `auth status` shows: times and the pause, never a token."""
        pair, paused, now = self.store.read()
        shown: dict[str, Any] = {"client_id": self.app.client_id, "now": now, "paused": None,
                                 "stored": pair is not None}
        if paused:
            shown["paused"] = {"since": paused.get("since"), "reason": paused.get("reason")}
        if pair is not None:
            shown.update(access_expires_at=pair.expires_at, refresh_expires_at=pair.refresh_expires_at,
                         last_refresh=pair.refreshed_at, authorized_at=pair.authorized_at,
                         next_refresh=min(pair.expires_at - min(pair.lifetime * self.policy.ahead,
                                                                self.policy.ahead_max),
                                          pair.refreshed_at + self.policy.every))
        return shown

    # the single flight ----------------------------------------------------------------------------------------
    def _refresh(self, stale: str | None, *, wait: float, force: bool = False,
                 fallback: TokenPair | None = None) -> tuple[TokenPair, bool]:
        """(the pair to use, whether this call rotated it). `stale`: the access token Keap refused (None: refresh
        if due). With `fallback`, a busy lease returns it instead of waiting."""
        deadline = time.monotonic() + wait
        while True:
            with ExitStack() as held:
                try:
                    lease = held.enter_context(self._lease(self._lease_name, self.lease_seconds,
                                                           max(0.0, min(0.5, deadline - time.monotonic()))))
                except TimeoutError:
                    lease = None
                # Read again: whoever held the lease before us may have stored a new pair already.
                pair, paused, now = self.store.read()
                pair = _usable(pair, paused)
                wanted = force or (pair.access_token == stale if stale is not None else self.policy.due(pair, now))
                if not wanted:
                    return pair, False
                if lease is not None:
                    return self._rotate(pair, now, lease), True
            if fallback is not None:
                return fallback, False
            if time.monotonic() >= deadline:
                raise KeapTransientError(f"oauth {self.app.client_id}: another worker's token refresh has not "
                                         f"finished within {wait:.0f}s; retry later")

    def _rotate(self, pair: TokenPair, now: float, lease: Any) -> TokenPair:
        try:
            answer = rotate_grant(self.app.token_url, self.app.client_id, self.app.client_secret, pair.refresh_token,
                                  session=self.session)
        except KeapOutcomeUnknown:
            raise KeapTransientError(
                f"oauth {self.app.client_id}: no answer to a token refresh; if Keap applied it, the next refresh is "
                f"refused and the workers wait for `{LOGIN}`") from None
        except KeapAuthError as exc:
            if not _grant_refused(exc):
                raise
            return self._refused(pair, exc)
        new = TokenPair.issued(answer, sent_at=now, authorized_at=pair.authorized_at)
        resumed = self.store.save(new, replaced=pair)  # stored before anyone uses it
        if getattr(lease, "lost", None) is not None and lease.lost.is_set():
            log.warning("oauth %s: the refresh lease ran out during the refresh (a pause longer than the lease?)",
                        self.app.client_id)
        log.info("oauth %s: tokens refreshed; access token valid for %ds", self.app.client_id, int(new.lifetime))
        if resumed:
            log.warning("oauth %s: a refused refresh had raced with this one; the grant is alive, workers resume",
                        self.app.client_id)
            if self.on_resume is not None:
                self.on_resume()
        return new

    def _refused(self, sent: TokenPair, exc: KeapAuthError) -> TokenPair:
        stored, _, now = self.store.read()
        if stored is not None and stored.refresh_token != sent.refresh_token:
            # Another process rotated it after our lease ran out: the grant is alive.
            return stored
        reason = keap_message(exc.body) or f"HTTP {exc.status}"
        if self.store.pause(reason, fingerprint(sent.refresh_token), now):
            # The one alert of the fleet. With Sentry's logging integration this line is also the Sentry event.
            log.error("oauth %s: Keap refused the refresh token (%s): the app's access was revoked or the token was "
                      "used up; every worker pauses and orders wait for re-authorisation until someone runs `%s`",
                      self.app.client_id, reason, LOGIN)
        raise CredentialRevoked(f"Keap refused the OAuth refresh token ({reason}); orders wait until someone runs "
                                f"`{LOGIN}`", status=exc.status, body=exc.body)


def _usable(pair: TokenPair | None, paused: dict | None) -> TokenPair:
    if paused:
        raise CredentialRevoked(f"Keap refused the OAuth grant ({paused.get('reason')}); orders wait until someone "
                                f"runs `{LOGIN}`")
    if pair is None:
        raise CredentialRevoked(f"no OAuth tokens stored: run `{LOGIN}`")
    return pair


def _grant_refused(exc: KeapAuthError) -> bool:
    """Keap's answers to a dead refresh token: 400 invalid_grant, or 400 invalid_request "Invalid Refresh Token"."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error, said = str(body.get("error", "")), str(body.get("error_description", "")).lower()
    return exc.status == 400 and (error == "invalid_grant" or (error == "invalid_request" and "refresh token" in said))
