"""Keap's limits: per credential a rolling 1-second spike, a rolling minute (Apigee QPM) and a daily quota reset at
00:00 UTC; per account (tenant, since June 8, 2026) a rolling minute and a daily quota shared by every credential.

A request answered 429 does not consume any window: Apigee rejects it before the counters move, so `used`
stays at the limit and a client that waits for the window to roll gets through. Thread-safe.
"""
from __future__ import annotations

import bisect
import datetime as dt
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

PROFILES = {
    "oauth": "25/s,1500/min,150000/day",
    "sak": "10/s,240/min,30000/day",
    "tenant": "10000/min,250000/day",  # per Keap account, whatever the credential [THR, June 8 2026]
}
TENANT_ID = "sandbox.infusionsoft.com"
THROTTLED_BODY = {"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": None}
_UNITS = {"s": "per_second", "sec": "per_second", "second": "per_second", "min": "per_minute",
          "minute": "per_minute", "day": "per_day"}


@dataclass(frozen=True)
class Limits:
    """Requests allowed per window; None means that window is not enforced."""

    per_second: int | None = None
    per_minute: int | None = None
    per_day: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Limits | None":
        """"oauth", "sak", "off" or a custom "20/s,600/min,5000/day" (any subset). None/"off" → no limits."""
        if text is None or text.strip().lower() in ("off", "none", ""):
            return None
        spec = PROFILES.get(text.strip().lower(), text)
        values: dict[str, int] = {}
        for part in spec.split(","):
            found = re.fullmatch(r"\s*(\d+)\s*/\s*([a-z]+)\s*", part.lower())
            if not found or found.group(2) not in _UNITS:
                raise ValueError(f"bad limits {text!r}: use oauth, sak, off or e.g. '20/s,600/min,5000/day'")
            values[_UNITS[found.group(2)]] = int(found.group(1))
        return cls(**values)

    def describe(self) -> str:
        parts = [f"{n}/{u}" for n, u in ((self.per_second, "s"), (self.per_minute, "min"), (self.per_day, "day"))
                 if n is not None]
        return ",".join(parts)


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str]


class _Windows:
    """Timestamps of one credential's counted requests (accepted ones) and of every attempt (for stats)."""

    def __init__(self):
        self.accepted: deque[float] = deque()
        self.attempts: deque[float] = deque()
        self.day: dt.date | None = None
        self.day_used = 0
        self.max_per_second = 0
        self.max_per_minute = 0
        self.first: float | None = None  # first and last attempt: the active period of a benchmark
        self.last: float | None = None


def _count_since(times: deque[float], since: float) -> int:
    return len(times) - bisect.bisect_right(times, since)


def next_utc_midnight(now: float) -> dt.datetime:
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.timezone.utc)


class RateLimiter:
    """Decides each authenticated API call and produces Keap's `x-keap-product-*` and `x-keap-tenant-*` headers.

    The sandbox is one Keap account: `tenant_limits` are shared by every credential that calls it.
    """

    def __init__(self, limits: Limits | None, clock: Callable[[], float], tenant_limits: Limits | None = None,
                 tenant_id: str = TENANT_ID):
        self.limits = limits
        self.tenant_limits = tenant_limits
        self.tenant_id = tenant_id
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Windows] = {}
        self._tenant = _Windows()

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._tenant = _Windows()

    def check(self, credential: str, *, force_reject: bool = False) -> Verdict:
        """Count one call by `credential`; `force_reject` answers 429 without consuming (burst_429 fault)."""
        now = self.clock()
        with self._lock:
            win = self._windows.setdefault(credential, _Windows())
            for w in (win, self._tenant):
                self._prune(w, now)
                w.attempts.append(now)
                w.first = now if w.first is None else w.first
                w.last = now
                w.max_per_second = max(w.max_per_second, _count_since(w.attempts, now - 1.0))
                w.max_per_minute = max(w.max_per_minute, len(w.attempts))
            allowed = not force_reject and not _full(self.limits, win, now) and not _full(self.tenant_limits,
                                                                                        self._tenant, now)
            if allowed:
                for w in (win, self._tenant):
                    w.accepted.append(now)
                    w.day_used += 1
            return Verdict(allowed, self._headers(win, now))

    def peaks(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._lock:
            return ({c: w.max_per_second for c, w in self._windows.items()},
                    {c: w.max_per_minute for c, w in self._windows.items()})

    def activity(self) -> dict:
        """Per credential and for the account: first and last call (sandbox clock) and the busiest second and
        minute, 429s included."""
        with self._lock:
            scopes = {**{c: w for c, w in self._windows.items()}, f"tenant:{self.tenant_id}": self._tenant}
            return {c: {"first": w.first, "last": w.last, "max_per_second": w.max_per_second,
                        "max_per_minute": w.max_per_minute, "accepted_today": w.day_used}
                    for c, w in scopes.items() if w.first is not None}

    def headers_for(self, credential: str | None) -> dict[str, str]:
        """Headers for an answer that consumed nothing (e.g. 401): the credential's current state."""
        now = self.clock()
        with self._lock:
            win = self._windows.get(credential or "") or _Windows()
            for w in (win, self._tenant):
                self._prune(w, now)
            return self._headers(win, now)

    @staticmethod
    def _prune(win: _Windows, now: float) -> None:
        for times in (win.accepted, win.attempts):
            while times and times[0] <= now - 60.0:
                times.popleft()
        today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
        if win.day != today:
            win.day, win.day_used = today, 0

    def _headers(self, win: _Windows, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        limits, tenant = self.limits, self.tenant_limits
        if limits is not None:
            headers.update(_window_headers("x-keap-product-", limits, win, now))
            if limits.per_second is not None:
                headers["x-keap-product-spike-limit"] = str(limits.per_second)
        if tenant is not None:
            # UNCONFIRMED spellings: Keap's page names the tenant limit; the x-keap-tenant-throttle-* names come
            # from a third-party summary of it [AE-RL], and x-keap-tenant-quota-* mirror the product headers by
            # analogy (no source names them). reference/keap-api.md §5.
            headers["x-keap-tenant-id"] = self.tenant_id
            headers.update(_window_headers("x-keap-tenant-", tenant, self._tenant, now))
        return headers


def _full(limits: Limits | None, win: _Windows, now: float) -> bool:
    if limits is None:
        return False
    return ((limits.per_second is not None and _count_since(win.accepted, now - 1.0) >= limits.per_second)
            or (limits.per_minute is not None and len(win.accepted) >= limits.per_minute)
            or (limits.per_day is not None and win.day_used >= limits.per_day))


def _window_headers(prefix: str, limits: Limits, win: _Windows, now: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, limit, unit, used in (("throttle", limits.per_minute, "minute", len(win.accepted)),
                                    ("quota", limits.per_day, "day", win.day_used)):
        if limit is not None:
            p = f"{prefix}{kind}-"
            headers.update({p + "limit": str(limit), p + "time-unit": unit, p + "interval": "1",
                            p + "available": str(max(limit - used, 0)), p + "used": str(used)})
    if limits.per_day is not None:
        headers[prefix + "quota-expiry-time"] = str(int(next_utc_midnight(now).timestamp() * 1000))
    return headers
