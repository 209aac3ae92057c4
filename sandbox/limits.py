"""Keap's per-credential limits: rolling 1-second spike, rolling minute (Apigee QPM), daily quota reset at 00:00 UTC.

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
}
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


def _count_since(times: deque[float], since: float) -> int:
    return len(times) - bisect.bisect_right(times, since)


def next_utc_midnight(now: float) -> dt.datetime:
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.timezone.utc)


class RateLimiter:
    """Decides each authenticated API call and produces Keap's `x-keap-product-*` headers."""

    def __init__(self, limits: Limits | None, clock: Callable[[], float]):
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Windows] = {}

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def check(self, credential: str, *, force_reject: bool = False) -> Verdict:
        """Count one call by `credential`; `force_reject` answers 429 without consuming (burst_429 fault)."""
        now = self.clock()
        with self._lock:
            win = self._windows.setdefault(credential, _Windows())
            self._prune(win, now)
            win.attempts.append(now)
            win.max_per_second = max(win.max_per_second, _count_since(win.attempts, now - 1.0))
            win.max_per_minute = max(win.max_per_minute, len(win.attempts))
            limits = self.limits
            if limits is None:
                return Verdict(not force_reject, {})
            in_second = _count_since(win.accepted, now - 1.0)
            in_minute = len(win.accepted)
            allowed = not force_reject and not (
                (limits.per_second is not None and in_second >= limits.per_second)
                or (limits.per_minute is not None and in_minute >= limits.per_minute)
                or (limits.per_day is not None and win.day_used >= limits.per_day)
            )
            if allowed:
                win.accepted.append(now)
                win.day_used += 1
                in_minute += 1
            return Verdict(allowed, self._headers(limits, in_minute, win.day_used, now))

    def peaks(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._lock:
            return ({c: w.max_per_second for c, w in self._windows.items()},
                    {c: w.max_per_minute for c, w in self._windows.items()})

    def headers_for(self, credential: str | None) -> dict[str, str]:
        """Headers for an answer that consumed nothing (e.g. 401): the credential's current state."""
        if self.limits is None:
            return {}
        now = self.clock()
        with self._lock:
            win = self._windows.get(credential or "") or _Windows()
            self._prune(win, now)
            return self._headers(self.limits, len(win.accepted), win.day_used, now)

    @staticmethod
    def _prune(win: _Windows, now: float) -> None:
        for times in (win.accepted, win.attempts):
            while times and times[0] <= now - 60.0:
                times.popleft()
        today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
        if win.day != today:
            win.day, win.day_used = today, 0

    @staticmethod
    def _headers(limits: Limits, minute_used: int, day_used: int, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for kind, limit, unit, used in (("throttle", limits.per_minute, "minute", minute_used),
                                        ("quota", limits.per_day, "day", day_used)):
            if limit is not None:
                prefix = f"x-keap-product-{kind}-"
                headers.update({prefix + "limit": str(limit), prefix + "time-unit": unit, prefix + "interval": "1",
                                prefix + "available": str(max(limit - used, 0)), prefix + "used": str(used)})
        if limits.per_day is not None:
            headers["x-keap-product-quota-expiry-time"] = str(int(next_utc_midnight(now).timestamp() * 1000))
        if limits.per_second is not None:
            headers["x-keap-product-spike-limit"] = str(limits.per_second)
        return headers
