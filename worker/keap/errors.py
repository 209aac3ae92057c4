"""Keap errors, grouped by what the caller should do about them:

    KeapError                        .status .message .limits .body
    ├── KeapTransientError           retry later: 5xx, timeouts, connection errors
    │   ├── KeapRateLimited          429; .retry_after (seconds) from Retry-After or the x-keap-* headers
    │   │   └── KeapQuotaExhausted   429 with the daily quota used up; .resets_at (UTC): park until then
    │   └── KeapOutcomeUnknown       a write may have been applied: reconcile before writing again
    └── KeapPermanentError           do not retry as is
        ├── KeapAuthError            401/403, refused OAuth grant
        │   └── CredentialRefused    Keap refuses the credential in use: orders wait (.waiting says for what)
        │       └── CredentialRevoked  the OAuth grant is dead: the fleet pauses until `keap-orders auth login`
        ├── KeapNotFound             404
        └── KeapValidationError      400/409/422, Keap's message verbatim
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from worker import scrub
from worker.keap.quota import RateLimits

# Methods whose effect may already exist on Keap's side when the answer is lost or is a 5xx.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SPIKE_RETRY_SECONDS = 1.0  # a 429 with throttle and quota left is Keap's per-second spike arrest
_MAX_TEXT = 300


class KeapError(Exception):
    def __init__(self, message: str, *, status: int | None = None, limits: RateLimits | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.limits = limits
        self.body = body


class KeapTransientError(KeapError):
    pass


class KeapRateLimited(KeapTransientError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class KeapQuotaExhausted(KeapRateLimited):
    def __init__(self, message: str, *, resets_at: datetime, **kwargs: Any) -> None:
        kwargs.setdefault("retry_after", max(0.0, (resets_at - datetime.now(timezone.utc)).total_seconds()))
        super().__init__(message, **kwargs)
        self.resets_at = resets_at


class KeapOutcomeUnknown(KeapTransientError):
    pass


class KeapPermanentError(KeapError):
    pass


class KeapAuthError(KeapPermanentError):
    pass


class CredentialRefused(KeapAuthError):
    """Keap refuses the credential in use (401/403 to an API key, or to an OAuth token it was sent again with): no
    order can go on until someone fixes it, so orders wait instead of failing. `waiting`: what they wait for, with
    the fix for this kind of credential."""

    waiting = "waiting for re-authorisation (keap-orders auth login)"

    def __init__(self, message: str, *, waiting: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if waiting is not None:
            self.waiting = waiting


class CredentialRevoked(CredentialRefused):
    """Keap refused the OAuth grant (invalid_grant): no request can succeed until someone authorises the app
    again (`keap-orders auth login`). Every worker waits instead of failing orders."""


class KeapNotFound(KeapPermanentError):
    pass


class KeapValidationError(KeapPermanentError):
    pass


def error_from_response(status: int, body: Any, limits: RateLimits | None, *, method: str | None = None,
                        path: str | None = None) -> KeapError:
    """THE mapping of a non-2xx Keap answer to an error. `path` should be the template (no ids, no query)."""
    where = f"HTTP {status}" + (f", {method.upper()} {path}" if method and path else "")
    said = keap_message(body)
    detail = f": {said}" if said else ""
    kwargs: dict[str, Any] = {"status": status, "limits": limits, "body": body}
    if status == 429:
        if limits is not None and limits.quota_exhausted:
            resets_at = _quota_reset(limits)
            return KeapQuotaExhausted(
                f"Keap daily API quota exhausted ({where}){detail}; nothing will succeed before "
                f"{resets_at:%Y-%m-%d %H:%M} UTC: park the work until then",
                resets_at=resets_at, retry_after=limits.seconds_until(resets_at), **kwargs)
        retry_after = _throttle_wait(limits)
        return KeapRateLimited(f"Keap rate limit hit ({where}){detail}; retry in {retry_after:g} s",
                               retry_after=retry_after, **kwargs)
    if status in (401, 403):
        # The credential's kind knows the fix (its auth's `refused`); this is what a caller without one sees.
        hint = ("the credential is wrong or revoked" if status == 401
                else "the credential lacks permission for this call")
        return KeapAuthError(f"Keap refused the credentials ({where}){detail}: {hint}", **kwargs)
    if status == 404:
        return KeapNotFound(f"Keap has no such resource ({where}){detail}", **kwargs)
    if status in (400, 409, 422):
        return KeapValidationError(f"Keap rejected the request ({where}){detail}", **kwargs)
    if status >= 500 and method and method.upper() in WRITE_METHODS:
        # A 5xx (notably a gateway 502/504) can arrive after the backend applied the write.
        return KeapOutcomeUnknown(
            f"Keap server error after the request was sent ({where}){detail}; it may have been applied: "
            "reconcile before writing again", **kwargs)
    if status >= 500 or status == 408:
        return KeapTransientError(f"Keap server error ({where}){detail}; retry later", **kwargs)
    return KeapPermanentError(f"Keap refused the request ({where}){detail}", **kwargs)


def error_from_exception(exc: requests.RequestException, method: str, path: str | None = None) -> KeapError:
    """Map a `requests` failure. Never uses str(exc): it carries the URL, whose query may hold an email."""
    method = method.upper()
    where = f"{method} {path}" if path else method
    kind = _reason_name(exc)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
        return KeapPermanentError(f"cannot send {where} to Keap ({kind}): check the base URL and the credential")
    if _nothing_sent(exc):
        return KeapTransientError(f"could not connect to Keap for {where} ({kind}); nothing was sent, retry later")
    if method in WRITE_METHODS:
        return KeapOutcomeUnknown(
            f"no answer from Keap for {where} ({kind}) after the request was sent; it may have been applied: "
            "reconcile before writing again")
    return KeapTransientError(f"no answer from Keap for {where} ({kind}); retry later")


def keap_message(body: Any) -> str:
    """Keap's own words from an error body (v2 Error, Apigee 429, OAuth error, fault, or plain text), scrubbed of
    customer data and secrets (Keap may echo the values it refused) and clipped: this text is stored in the ledger,
    logged and sent to Sentry."""
    if isinstance(body, dict):
        fault = body.get("fault")
        if isinstance(fault, dict) and fault.get("faultstring"):
            return _clip(str(fault["faultstring"]))
        if body.get("error_description") or body.get("error"):
            parts = [str(body[k]) for k in ("error", "error_description") if body.get(k)]
            return _clip(": ".join(parts))
        parts = [str(body[k]) for k in ("status", "message") if body.get(k)]
        return _clip(": ".join(parts))
    if isinstance(body, (str, bytes)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return _clip(" ".join(text.split()))
    return ""


def _clip(text: str) -> str:
    text = scrub.text(text)  # before clipping, so no secret is cut where its pattern no longer sees it
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _quota_reset(limits: RateLimits) -> datetime:
    if limits.quota_resets_at is not None:
        return limits.quota_resets_at
    # Keap documents the daily quotas as resetting at 00:00 UTC.
    now = limits.server_time or datetime.now(timezone.utc)
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _throttle_wait(limits: RateLimits | None) -> float:
    if limits is None:
        return _SPIKE_RETRY_SECONDS
    if limits.retry_after_seconds is not None:
        return limits.retry_after_seconds
    if limits.throttle_exhausted:
        # The window is rolling; after one full window every counted call has aged out.
        window = (limits.throttle_window_seconds if limits.throttle_available == 0
                  else limits.tenant_throttle_window_seconds)
        return float(window or 60)
    return _SPIKE_RETRY_SECONDS


def _causes(exc: BaseException):
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])


def _nothing_sent(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    return any(isinstance(e, (NewConnectionError, ConnectTimeoutError)) for e in _causes(exc))


def _reason_name(exc: BaseException) -> str:
    # The innermost cause names what happened (ConnectionRefusedError, ReadTimeoutError, ...) without the URL.
    names = [type(e).__name__ for e in _causes(exc)]
    return names[0] if len(names) == 1 else f"{names[0]}: {names[-1]}"
