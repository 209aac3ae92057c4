"""Keap's limits as the throttle models them: profiles, windows, scopes, and what an answer's x-keap-* headers
and a 429 tell each scope."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from worker.keap.errors import KeapQuotaExhausted, error_from_response
from worker.keap.quota import RateLimits

# Per credential type, as Keap documents them (reference/keap-api.md §5). The SAK spike is set to Keap
# staff's observed SpikeArrest rate of 5/s, not the documented 10/s, because 10/s draws intermittent 429s.
PROFILES = {
    "off": "",
    "oauth": "25/s,1500/min,150000/day",
    "sak": "5/s,240/min,30000/day",
}
# Per Keap account ("application instance"), whatever the credential, since June 8, 2026.
ACCOUNT_LIMITS = "10000/min,250000/day"
_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "day": 86400}


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: int


def parse_limits(spec: str) -> list[Window]:
    """'5/s,240/min,30000/day' (or a profile name) -> windows. Raises ValueError naming the bad part."""
    spec = PROFILES.get(spec.strip(), spec)
    windows = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"(\d+)\s*/\s*([a-z]+)", part)
        if not m or m.group(2) not in _UNITS:
            raise ValueError(f"rate limit {part!r}: expected N/s, N/min or N/day, e.g. '5/s,240/min,30000/day'")
        windows.append(Window(int(m.group(1)), _UNITS[m.group(2)]))
    return windows


@dataclass(frozen=True)
class Scope:
    """One party Keap counts calls for: `credential` (an OAuth app, a key) or `account` (a Keap app, all
    credentials). `key` is its Redis key prefix, named by the account/app, never by a token."""

    kind: str
    key: str
    windows: tuple[Window, ...]

    @property
    def rolling(self) -> Window | None:
        """The longest rolling window (Keap's minute): its sends are logged so Keap's count can correct it."""
        rolling = [w for w in self.windows if w.seconds < 86400]
        return max(rolling, key=lambda w: w.seconds) if rolling else None

    @property
    def day_limit(self) -> int:
        return min((w.limit for w in self.windows if w.seconds >= 86400), default=0)

    def interval_ms(self, margin_ms: float) -> float:
        """The spacing of sends that keeps every rolling window under its limit even when a send arrives up
        to `margin_ms` late: N sends span at least the window plus the margin."""
        return max(((w.seconds * 1000 + margin_ms) / w.limit for w in self.windows if w.seconds < 86400),
                   default=0.0)


def keap_figures(scope: Scope, limits: RateLimits | None, margin_ms: float) -> list:
    """Keap's figures for this scope: the product headers for a credential, the tenant headers for an account."""
    w = scope.rolling
    prefix = "tenant_" if scope.kind == "account" else ""
    get = (lambda name: getattr(limits, prefix + name)) if limits else (lambda name: None)
    used = get("throttle_used")
    if used is None and get("throttle_limit") is not None and get("throttle_available") is not None:
        used = get("throttle_limit") - get("throttle_available")
    day_used = get("quota_used")
    if day_used is None and get("quota_limit") is not None and get("quota_available") is not None:
        day_used = get("quota_limit") - get("quota_available")
    # Only a window Keap describes as the one we log (its minute) may correct our log.
    same_window = w is not None and get("throttle_window_seconds") in (None, w.seconds)
    reset = get("quota_resets_at")
    values = [used if same_window else None, get("throttle_limit") if same_window else None,
              (w.seconds * 1000 + margin_ms) if w and same_window else None,
              day_used, get("quota_limit"), reset.timestamp() * 1000 if reset else None]
    return ["" if v is None else v for v in values]


def pauses(scopes: list[Scope], limits: RateLimits | None, status: int) -> tuple[dict[str, tuple], bool]:
    """How a 429 stops each scope kind: (longest pause s, None or "grows" for a spike arrest Keap does not
    time), and whether it stops it until a daily reset.

    A used-up minute needs no pause where we log that window: Keap's count fills the log, which then frees
    slot by slot. A spike arrest (or an answer without headers) pauses the credential: for Retry-After if Keap
    sends one, else for two slots, doubling while 429s keep coming, up to the estimate of errors.py.
    """
    if status != 429:
        return {}, False
    error = error_from_response(429, None, limits)
    if isinstance(error, KeapQuotaExhausted):
        seconds = max(0.0, (error.resets_at - datetime.now(timezone.utc)).total_seconds())
        return {"credential" if limits.quota_available == 0 else "account": (seconds, None)}, True
    announced = limits is not None and limits.retry_after_seconds is not None
    if announced or limits is None or not limits.throttle_exhausted:
        return {"credential": (error.retry_after or 1.0, None if announced else "grows")}, False
    kind = "credential" if limits.throttle_available == 0 else "account"
    window = limits.throttle_window_seconds if kind == "credential" else limits.tenant_throttle_window_seconds
    logged = any(s.kind == kind and s.rolling and s.rolling.seconds == (window or s.rolling.seconds) for s in scopes)
    return ({} if logged else {kind: (error.retry_after or 60.0, None)}), False
