"""Keap REST v2 client: knows HTTP and Keap, nothing of Celery, orders, ledger or retries."""
from worker.keap.auth import ApiKeyAuth, BearerAuth, exchange_code, refresh_token
from worker.keap.client import KeapClient
from worker.keap.pause import CredentialPause
from worker.keap.errors import (
    CredentialRefused,
    CredentialRevoked,
    KeapAuthError,
    KeapError,
    KeapNotFound,
    KeapOutcomeUnknown,
    KeapPermanentError,
    KeapQuotaExhausted,
    KeapRateLimited,
    KeapTransientError,
    KeapValidationError,
    error_from_response,
)
from worker.keap.quota import RateLimits
from worker.keap.wire import build_filter, money

__all__ = [
    "ApiKeyAuth", "BearerAuth", "CredentialPause", "CredentialRefused", "CredentialRevoked", "KeapAuthError",
    "KeapClient", "KeapError", "KeapNotFound", "KeapOutcomeUnknown",
    "KeapPermanentError", "KeapQuotaExhausted", "KeapRateLimited", "KeapTransientError", "KeapValidationError",
    "RateLimits", "build_filter", "error_from_response", "exchange_code", "money", "refresh_token",
]
