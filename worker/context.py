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

from worker.keap import ApiKeyAuth, BearerAuth, KeapClient
from worker.ledger import Ledger
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
    return Ledger(client or redis_client(settings), settings.key_prefix)


def credential(settings: Settings) -> tuple[AuthBase, str, str]:
    """(auth for requests, default limit profile, the credential's rate-limit name): Keap limits a service key
    or PAT per key and OAuth per app (client id), so the name is a digest of the key or the app, never a token."""
    if settings.keap_api_key:
        key = settings.keap_api_key.get_secret_value()
        return ApiKeyAuth(key), "sak", "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    if settings.keap_access_token:
        token = settings.keap_access_token.get_secret_value()
        # Access tokens rotate daily; the app they belong to does not. One app per deployment until OAuth
        # client settings exist.
        return BearerAuth(lambda: token), "oauth", "oauth-app"
    raise NoCredential("no Keap credential: set KEAP_API_KEY (or KEAP_ACCESS_TOKEN) in the environment or .env")


def throttle(settings: Settings, client: redis.Redis | None = None) -> Throttle:
    """The limit shared by every worker: the credential's windows and, on top, the Keap account's, which every
    credential of that account shares (without KEAP_ACCOUNT, a key's account is named after the key)."""
    _, profile, name = credential(settings)
    base = f"{settings.key_prefix}:throttle"
    scopes = [Scope("credential", f"{base}:credential:{name}", tuple(parse_limits(settings.rate_limits or profile))),
              Scope("account", f"{base}:account:{settings.keap_account or name}",
                    tuple(parse_limits(settings.account_rate_limits)))]
    return Throttle(client or redis_client(settings), scopes, max_block=settings.throttle_max_block_seconds,
                    backfill_share=settings.backfill_quota_share, send_margin_ms=settings.throttle_send_margin_ms)


def keap_client(settings: Settings, client: redis.Redis | None = None) -> KeapClient:
    auth, _, _ = credential(settings)
    return KeapClient(settings.keap_base_url, auth, session=ThrottledSession(throttle(settings, client)),
                      timeout=(5.0, settings.keap_timeout_seconds))


def build_context(settings: Settings) -> StepContext:
    client = redis_client(settings)
    return StepContext(
        keap=keap_client(settings, client),
        ledger=ledger(settings, client),
        external_id_label=settings.external_id_field_label,
        create_missing_custom_fields=settings.create_missing_custom_fields,
        settle_seconds=settings.settle_seconds,
        settle_checks=settings.settle_checks,
        lease_seconds=settings.lease_seconds,
    )


_current: tuple[Settings, StepContext] | None = None


def current() -> tuple[Settings, StepContext]:
    """This worker process's settings and context, built from the environment on first use."""
    global _current
    if _current is None:
        settings = get_settings()
        _current = (settings, build_context(settings))
    return _current


def install(settings: Settings | None, ctx: StepContext | None = None) -> None:
    """Use these in this process from now on (tests); install(None) drops them so the next use rebuilds them
    (after a fork: Redis connections and HTTP sessions are not shared with the parent process)."""
    global _current
    _current = (settings, ctx or build_context(settings)) if settings is not None else None
