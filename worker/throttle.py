"""The rate limit shared by every worker process on every host: Keap's windows, kept in Redis.

Celery's `rate_limit` is per worker process, useless against a per-credential limit. Here each Keap call
first takes a slot in every window (rolling second and minute, day resetting at 00:00 UTC) in one atomic Lua
script that uses Redis server time, so all hosts agree on the clock.
"""
from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

import redis
import requests

# Per credential type, as Keap documents them (reference/keap-api.md §5). The SAK spike is set to Keap
# staff's observed SpikeArrest rate of 5/s, not the documented 10/s, because 10/s draws intermittent 429s.
PROFILES = {
    "off": "",
    "oauth": "25/s,1500/min,150000/day",
    "sak": "5/s,240/min,30000/day",
}
_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "day": 86400}

# KEYS: one sorted set per rolling window, then the day counter. ARGV: now is read from Redis; limits and
# widths (ms) pairs for the rolling windows, then the day limit, then a unique member.
# Returns 0 when a slot was taken, else the milliseconds to wait before trying again.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS - 1
local wait = 0
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  local width = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - width)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + width - now + 1)
  end
end
local day_limit = tonumber(ARGV[2 * n + 1])
local day_key = KEYS[n + 1] .. ':' .. math.floor(now / 86400000)
if day_limit > 0 and tonumber(redis.call('GET', day_key) or '0') >= day_limit then
  wait = math.max(wait, 86400000 - (now % 86400000))
end
if wait > 0 then return wait end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[2 * n + 2] .. ':' .. i)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i]) + 1000)
end
redis.call('INCR', day_key)
redis.call('EXPIRE', day_key, 90000)
return 0
"""


# The lane of the step this thread is running ("live" or "backfill"), set by the runner: the throttle serves
# live calls first and keeps the backfill within its share of the day.
LANE: ContextVar[str] = ContextVar("keap_orders_lane", default="live")


class QuotaWait(Exception):
    """No slot in the shared limit for longer than the caller may block; try again after `seconds`.

    `daily`: the day's quota is used up, so the wait runs to Keap's reset (00:00 UTC) and the order is parked.
    """

    def __init__(self, seconds: float, *, daily: bool = False):
        super().__init__(f"Keap {'daily quota used up' if daily else 'rate limit reached'}; next slot in {seconds:.1f}s")
        self.seconds = seconds
        self.daily = daily


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


class Throttle:
    def __init__(self, client: redis.Redis, windows: list[Window], key: str, max_block: float = 5.0):
        self._script = client.register_script(_ACQUIRE)
        # Rolling windows keep some headroom: our clock (Redis) and Keap's differ by network jitter, so a
        # window filled to the last call here can look one call over the limit at Keap.
        self._rolling = [Window(max(1, int(w.limit * (0.8 if w.seconds <= 1 else 0.98))), w.seconds)
                         for w in windows if w.seconds < 86400]
        self._day = next((w.limit for w in windows if w.seconds == 86400), 0)
        self._keys = [f"{key}:{w.seconds}s" for w in self._rolling] + [f"{key}:day"]
        self.max_block = max_block

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or take nothing and return the seconds to wait."""
        args: list = []
        for w in self._rolling:
            args += [w.limit, w.seconds * 1000]
        args += [self._day, uuid.uuid4().hex]
        return int(self._script(keys=self._keys, args=args)) / 1000.0

    def acquire(self) -> None:
        """Block for short waits (a busy second or minute); raise QuotaWait for longer ones."""
        deadline = time.monotonic() + self.max_block
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise QuotaWait(wait, daily=wait > 3600)
            time.sleep(wait)


class ThrottledSession(requests.Session):
    """A requests.Session that takes a slot in the shared limit before every request it sends."""

    def __init__(self, throttle: Throttle):
        super().__init__()
        self.throttle = throttle

    def request(self, method, url, *args, **kwargs):
        self.throttle.acquire()
        return super().request(method, url, *args, **kwargs)
