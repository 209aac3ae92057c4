"""Keap's rate-limit state as reported by the `x-keap-*` headers of every response (plus Retry-After)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
# Apigee SpikeArrest rates look like "5ps" / "300pm"; a bare number is per second (Keap: "25 calls per second").
_SPIKE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ps|pm)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimits:
    """One response's view of the limits; every field is None when Keap did not send (a readable) header."""

    throttle_limit: int | None = None
    throttle_available: int | None = None
    throttle_used: int | None = None
    throttle_window_seconds: int | None = None
    quota_limit: int | None = None
    quota_available: int | None = None
    quota_used: int | None = None
    quota_window_seconds: int | None = None
    quota_resets_at: datetime | None = None
    spike_limit: float | None = None  # requests per second
    tenant_id: str | None = None
    tenant_throttle_limit: int | None = None
    tenant_throttle_available: int | None = None
    tenant_throttle_used: int | None = None
    tenant_throttle_window_seconds: int | None = None
    tenant_quota_limit: int | None = None
    tenant_quota_available: int | None = None
    tenant_quota_used: int | None = None
    tenant_quota_window_seconds: int | None = None
    tenant_quota_resets_at: datetime | None = None
    retry_after_seconds: float | None = None  # from a Retry-After header, if Keap ever sends one
    server_time: datetime | None = None  # Keap's clock (the Date header): reset times are measured against it

    @property
    def quota_exhausted(self) -> bool:
        """The daily quota (product or tenant) is used up: nothing succeeds before it resets at 00:00 UTC."""
        return self.quota_available == 0 or self.tenant_quota_available == 0

    @property
    def throttle_exhausted(self) -> bool:
        return self.throttle_available == 0 or self.tenant_throttle_available == 0

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: datetime | None = None) -> RateLimits | None:
        """Parse response headers (any case); None when there is neither an x-keap-* header nor Retry-After."""
        h = {str(k).lower(): str(v) for k, v in headers.items()}
        if "retry-after" not in h and not any(k.startswith("x-keap-") for k in h):
            return None
        fields: dict = {"retry_after_seconds": _retry_after(h.get("retry-after"), now)}
        for scope, prefix in (("product", ""), ("tenant", "tenant_")):
            for kind in ("throttle", "quota"):
                base = f"x-keap-{scope}-{kind}-"
                for attr in ("limit", "available", "used"):
                    fields[f"{prefix}{kind}_{attr}"] = _int(h.get(base + attr))
                if kind == "quota":
                    fields[f"{prefix}quota_resets_at"] = _epoch(h.get(base + "expiry-time"))
                fields[f"{prefix}{kind}_window_seconds"] = _window(h.get(base + "time-unit"), h.get(base + "interval"))
        fields["spike_limit"] = _spike(h.get("x-keap-product-spike-limit"))
        fields["tenant_id"] = h.get("x-keap-tenant-id") or None
        fields["server_time"] = _http_date(h.get("date"))
        return cls(**fields)

    def seconds_until(self, moment: datetime) -> float:
        """Seconds from Keap's clock (ours if it sent no Date) to `moment`: a reset time is Keap's, not ours."""
        return max(0.0, (moment - (self.server_time or datetime.now(timezone.utc))).total_seconds())


def _int(value: str | None) -> int | None:
    try:
        return int(float(value.strip())) if value is not None else None
    except ValueError:
        return None


def _window(unit: str | None, interval: str | None) -> int | None:
    seconds = _UNIT_SECONDS.get((unit or "").strip().lower().rstrip("s"))
    if seconds is None:
        return None
    count = _int(interval)
    return seconds * (count if count and count > 0 else 1)


def _epoch(value: str | None) -> datetime | None:
    number = _int(value)
    if number is None or number <= 0:
        return None
    # Keap sends milliseconds (e.g. 1771459200000); accept seconds too rather than land in 1970.
    seconds = number / 1000 if number > 10**11 else number
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _spike(value: str | None) -> float | None:
    match = _SPIKE.match(value or "")
    if not match:
        return None
    rate = float(match.group(1))
    return rate / 60 if (match.group(2) or "").lower() == "pm" else rate


def _http_date(value: str | None) -> datetime | None:
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def _retry_after(value: str | None, now: datetime | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
