"""Builds what a step needs from the settings: Redis, ledger, credential, shared throttle, KeapClient. No Celery.

`build_context(settings)` is what the worker, the CLI (verify, dry run) and the tests call; `current()` is the
worker process's own context, built once on first use and dropped after a fork.
"""
from __future__ import annotations

import hashlib

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from requests.auth import AuthBase

from worker.keap import ApiKeyAuth, BearerAuth, CredentialPause, KeapClient
from worker.keap.client import OnResponse
from worker.keap.tokens import (
    MAKE_KEY,
    OAuthApp,
    OAuthTokens,
    RefreshPolicy,
    TokenStore,
)
from worker.ledger import Ledger, LossPolicy
from worker.ops import observe
from worker.settings import Settings, get_settings
from worker.steps.base import StepContext
from worker.throttle import Scope, Throttle, ThrottledSession, parse_limits


class NoCredential(RuntimeError):
    """The settings name no Keap credential; nothing can be sent to Keap."""


def redis_client(settings: Settings) -> redis.Redis:
    # A dropped connection (Redis restart, failover, a proxy's idle cut) is retried a few times before it fails a
    # step; every ledger script is safe to run twice with the same arguments.
    return redis.Redis.from_url(settings.redis_url, socket_timeout=30, socket_connect_timeout=10,
                                retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 5),
                                retry_on_error=[redis.ConnectionError, redis.TimeoutError])


def ledger(settings: Settings, client: redis.Redis | None = None) -> Ledger:
    made = Ledger(client or redis_client(settings), settings.key_prefix)
    made.policy = LossPolicy(settings.redis_loss_grace_seconds, settings.audit_after_seconds, settings.ledger_replicas)
    return made


def credential(settings: Settings, client: redis.Redis | None = None) -> tuple[AuthBase, str, str]:
    """(auth for requests, default limit profile, the credential's rate-limit name): Keap limits a service key
    or PAT per key and OAuth per app (client id), so the name is a digest of the key or the app, never a token."""
    if settings.keap_api_key:
        key = settings.keap_api_key.get_secret_value()
        name = "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        return ApiKeyAuth(key, credential_pause(settings, name, client)), "sak", name
    tokens = oauth_tokens(settings, client)
    if tokens is not None:
        # Keap limits OAuth per app (client id), across its accounts; the tokens rotate, the app does not.
        return (BearerAuth(tokens.access_token, tokens.after_unauthorized), "oauth",
                f"oauth-{settings.keap_client_id}")
    if settings.keap_access_token:
        token = settings.keap_access_token.get_secret_value()
        name = "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]
        # A bare token: its app is not known, so it is limited as "oauth-app".
        return BearerAuth(lambda: token, pause=credential_pause(settings, name, client)), "oauth", "oauth-app"
    raise NoCredential("no Keap credential: set KEAP_API_KEY, or KEAP_CLIENT_ID (OAuth, then `keap-orders auth "
                       "login`), in the environment or .env")


def credential_pause(settings: Settings, name: str, client: redis.Redis | None = None) -> CredentialPause:
    """The fleet's pause on the credential `name` (a digest): a new key is a new credential, never paused."""
    return CredentialPause(client or redis_client(settings), f"{settings.key_prefix}:credential:{name}:paused")


def oauth_tokens(settings: Settings, client: redis.Redis | None = None) -> OAuthTokens | None:
    """The OAuth tokens of the app KEAP_CLIENT_ID (None without it): encrypted in Redis, refreshed single-flight
    under a ledger lease; a lifted pause releases the orders held for re-authorisation."""
    if not settings.keap_client_id:
        return None
    if not settings.keap_client_secret:
        raise NoCredential("KEAP_CLIENT_ID is set but KEAP_CLIENT_SECRET is not: set the app's client secret")
    if not settings.token_encryption_key:
        raise NoCredential(f"OAuth needs TOKEN_ENCRYPTION_KEY (encrypts the tokens in Redis); make one with: "
                           f"{MAKE_KEY}")
    client = client or redis_client(settings)
    held = ledger(settings, client)
    try:
        store = TokenStore(client, settings.token_encryption_key.get_secret_value(),
                           f"{settings.key_prefix}:oauth:{settings.keap_client_id}")
    except ValueError as exc:
        raise NoCredential(str(exc)) from None
    app = OAuthApp(settings.keap_client_id, settings.keap_client_secret.get_secret_value(), settings.keap_token_url)
    policy = RefreshPolicy(settings.oauth_refresh_ahead, settings.oauth_refresh_ahead_max_seconds,
                           settings.oauth_refresh_every_days * 86400)
    return OAuthTokens(store, app, held.lease, policy=policy, lease_seconds=settings.lease_seconds,
                       wait_seconds=settings.oauth_refresh_wait_seconds,
                       on_resume=lambda: held.release_held("reauth"))


def throttle(settings: Settings, client: redis.Redis | None = None,
             found: tuple[AuthBase, str, str] | None = None) -> Throttle:
    """The limit shared by every worker: the credential's windows and, on top, the Keap account's, which every
    credential of that account shares (without KEAP_ACCOUNT, the account is named after the credential).
    `found`: what credential() returned, when the caller has it already."""
    _, profile, name = found or credential(settings, client)
    base = f"{settings.key_prefix}:throttle"
    scopes = [Scope("credential", f"{base}:credential:{name}", tuple(parse_limits(settings.rate_limits or profile))),
              Scope("account", f"{base}:account:{settings.keap_account or name}",
                    tuple(parse_limits(settings.account_rate_limits)))]
    return Throttle(client or redis_client(settings), scopes, max_block=settings.throttle_max_block_seconds,
                    backfill_share=settings.backfill_quota_share, send_margin_ms=settings.throttle_send_margin_ms)


def keap_client(settings: Settings, client: redis.Redis | None = None) -> KeapClient:
    found = credential(settings, client)
    return KeapClient(settings.keap_base_url, found[0], session=ThrottledSession(throttle(settings, client, found)),
                      timeout=(5.0, settings.keap_timeout_seconds))


def build_context(settings: Settings, on_response: OnResponse | None = None,
                  client: redis.Redis | None = None) -> StepContext:
    """`on_response`: told of every Keap answer (the worker's metrics and per-step call counts); `client`: a Redis
    client of the caller's (the CLI's gives up sooner than a worker's)."""
    client = client or redis_client(settings)
    keap = keap_client(settings, client)
    keap.on_response = on_response
    return StepContext(
        keap=keap,
        ledger=ledger(settings, client),
        external_id_label=settings.external_id_field_label,
        create_missing_custom_fields=settings.create_missing_custom_fields,
        settle_seconds=settings.settle_seconds,
        settle_checks=settings.settle_checks,
        lease_seconds=settings.lease_seconds,
    )


_current: tuple[Settings, StepContext] | None = None
_tokens: tuple[Settings, OAuthTokens | None] | None = None


def current() -> tuple[Settings, StepContext]:
    """This worker process's settings and context, built from the environment on first use."""
    global _current
    if _current is None:
        settings = get_settings()
        _current = (settings, build_context(settings, on_response=observe.keap_answered))
    return _current


def current_tokens() -> OAuthTokens | None:
    """This worker process's OAuth tokens, for the keeper's refresh check (None without KEAP_CLIENT_ID)."""
    global _tokens
    settings, ctx = current()
    if _tokens is None or _tokens[0] is not settings:
        # An API key takes precedence (see credential()): then the workers use no OAuth tokens to keep fresh.
        _tokens = (settings, None if settings.keap_api_key else oauth_tokens(settings, ctx.ledger.redis))
    return _tokens[1]


def install(settings: Settings | None, ctx: StepContext | None = None) -> None:
    """Use these in this process from now on (tests); install(None) drops them so the next use rebuilds them
    (after a fork: Redis connections and HTTP sessions are not shared with the parent process)."""
    global _current
    _current = ((settings, ctx or build_context(settings, on_response=observe.keap_answered))
                if settings is not None else None)
