"""The rate limit shared by every worker process on every host: Keap's limits, paced and kept in Redis.

Each Keap call reserves an evenly spaced send slot (pacing, the rolling minute, the UTC day, per credential and
per Keap account) in one atomic Lua script on Redis server time, sleeps until it, then sends. Every answer's
x-keap-* headers correct the shared counts; a 429 pauses every worker on that credential or account, once.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections import deque
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import redis
import requests
import urllib3
from requests.adapters import HTTPAdapter

from worker.keap.errors import KeapQuotaExhausted, error_from_response
from worker.keap.quota import RateLimits

log = logging.getLogger(__name__)

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
_DAY_MS = 86_400_000

# One slot for one call, for every scope at once. A scope is a credential or an account: a hash (pacing time,
# pause, today's counters, the limits Keap reported) and a sorted set of the sends in its longest rolling window.
# KEYS: hash, zset per scope. ARGV: now_ms ('' = Redis TIME; tests pass a time), lane, horizon_ms (how far ahead
# this call may reserve), backfill share, member, reset margin ms; then per scope: interval_ms, window limit,
# window width ms, day limit (0 = none). Returns {granted, wait in µs, daily, slot ms, now ms}.
_RESERVE = """
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 end
local lane, horizon, share = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local member, reset_margin = ARGV[5], tonumber(ARGV[6])
local DAY = 86400000
local scopes = {}
for i = 1, #KEYS / 2 do
  local a = 6 + (i - 1) * 4
  local f = redis.call('HMGET', KEYS[2 * i - 1], 'tat', 'pause_until', 'pause_daily', 'day', 'total', 'live',
                       'backfill', 'keap_window_limit', 'keap_day_limit', 'keap_reset')
  local s = {h = KEYS[2 * i - 1], z = KEYS[2 * i], interval = tonumber(ARGV[a + 1]), limit = tonumber(ARGV[a + 2]),
             width = tonumber(ARGV[a + 3]), day_limit = tonumber(ARGV[a + 4]), tat = tonumber(f[1]) or 0,
             pause = tonumber(f[2]) or 0, pause_daily = f[3] == '1', day = tonumber(f[4]) or -1,
             total = tonumber(f[5]) or 0, live = tonumber(f[6]) or 0, backfill = tonumber(f[7]) or 0,
             keap_reset = tonumber(f[10]) or 0}
  -- Keap's own figure wins when it is lower than ours (a custom plan, or a profile that does not fit), for the
  -- window and for the pace that fills it.
  if f[8] and s.limit > 0 and tonumber(f[8]) < s.limit then
    s.limit = tonumber(f[8])
    s.interval = math.max(s.interval, s.width / s.limit)
  end
  if f[9] and s.day_limit > 0 then s.day_limit = math.min(s.day_limit, tonumber(f[9])) end
  if s.limit > 0 then redis.call('ZREMRANGEBYSCORE', s.z, '-inf', now - s.width) end
  scopes[i] = s
end
-- The earliest time every scope allows; moving it for one scope can matter to another, hence the passes.
local t, daily = now, false
for pass = 1, 4 do
  local moved = false
  for _, s in ipairs(scopes) do
    local start = math.max(t, s.tat)
    if s.pause > start then start = s.pause; daily = daily or s.pause_daily end
    if s.limit > 0 then
      local inside = redis.call('ZCOUNT', s.z, '(' .. (start - s.width), '+inf')
      if inside >= s.limit then
        local n = redis.call('ZCARD', s.z)
        local oldest = redis.call('ZRANGE', s.z, n - s.limit, n - s.limit, 'WITHSCORES')
        start = math.max(start, tonumber(oldest[2]) + s.width)
      end
    end
    local d = math.floor(start / DAY)
    local total, live, bf = 0, 0, 0
    if d == s.day then total, live, bf = s.total, s.live, s.backfill end
    if s.day_limit > 0 then
      local full = total >= s.day_limit
      if lane == 'backfill' then
        -- The backfill stops at its share, and never eats the part of the day live calls have not used yet.
        local reserve = math.max(0, math.ceil((1 - share) * s.day_limit) - live)
        full = full or bf >= math.floor(share * s.day_limit) or total >= s.day_limit - reserve
      end
      if full then
        local reset = (d + 1) * DAY
        if s.keap_reset > reset and s.keap_reset < reset + DAY then reset = s.keap_reset end
        start = math.max(start, reset + reset_margin)
        daily = true
      end
    end
    if start > t then t = start; moved = true end
  end
  if not moved then break end
end
local wait = t - now
if wait > horizon then return {0, math.floor(wait * 1000), daily and 1 or 0, '', string.format('%.3f', now)} end
for _, s in ipairs(scopes) do
  local d = math.floor(t / DAY)
  if d ~= s.day then redis.call('HSET', s.h, 'day', d, 'total', 0, 'live', 0, 'backfill', 0) end
  redis.call('HSET', s.h, 'tat', string.format('%.3f', t + s.interval))
  redis.call('HINCRBY', s.h, 'total', 1)
  redis.call('HINCRBY', s.h, lane == 'backfill' and 'backfill' or 'live', 1)
  redis.call('PEXPIRE', s.h, 2 * DAY)
  if s.limit > 0 then
    redis.call('ZADD', s.z, t, member)
    redis.call('PEXPIRE', s.z, s.width + 60000)
  end
end
return {1, math.floor(wait * 1000), 0, string.format('%.3f', t), string.format('%.3f', now)}
"""

# What Keap said in one answer, per scope: it corrects the shared state. KEYS: hash, zset per scope. ARGV: now_ms
# ('' = Redis TIME), the slot of the answered call (ms), jitter ms, member prefix, push ms (how much later than its
# slot the call left, beyond what the margin covers); then per scope: window used, window limit, window width ms,
# day used, day limit, reset ms, pause ms, shortest pause ms, pause daily, said (JSON) ('' = unknown).
_OBSERVE = """
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 end
local slot, jitter, member, push = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local DAY = 86400000
local added = 0
for i = 1, #KEYS / 2 do
  local h, z, a = KEYS[2 * i - 1], KEYS[2 * i], 5 + (i - 1) * 10
  local used, limit, width = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local day_used, day_limit, reset = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local pause, pause_min, pause_daily, said = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8]), ARGV[a + 9], ARGV[a + 10]
  if said ~= '' then redis.call('HSET', h, 'said', said, 'said_at', string.format('%.0f', now)) end
  if limit then redis.call('HSET', h, 'keap_window_limit', limit) end
  if day_limit then redis.call('HSET', h, 'keap_day_limit', day_limit) end
  if reset then redis.call('HSET', h, 'keap_reset', reset) end
  if push > 0 then
    -- The call left late: later slots move by as much, so every N sends still span the window.
    local tat = tonumber(redis.call('HGET', h, 'tat')) or 0
    if tat > now then redis.call('HSET', h, 'tat', string.format('%.3f', tat + push)) end
  end
  if used and width then
    -- Keap counted this call among `used`; ours that Keap may have counted lie within the jitter of the slot.
    -- The rest is someone else on the same key (or counters we lost): they stay in our window a full width.
    local ours = redis.call('ZCOUNT', z, slot - width - jitter, slot + jitter)
    local extra = math.min(used - ours, limit or used)
    for j = 1, extra do redis.call('ZADD', z, slot, member .. ':' .. j) end
    if extra > 0 then
      redis.call('PEXPIRE', z, width + 60000)
      added = added + extra
    end
  end
  if day_used then
    local d = math.floor(slot / DAY)
    local f = redis.call('HMGET', h, 'day', 'total')
    local day = tonumber(f[1]) or -1
    if d > day then
      redis.call('HSET', h, 'day', d, 'total', day_used, 'live', 0, 'backfill', 0)
    elseif d == day and day_used > (tonumber(f[2]) or 0) then
      redis.call('HSET', h, 'total', day_used)
    end
  end
  if pause and pause > 0 then
    local f = redis.call('HMGET', h, 'pause_set', 'pause_until', 'pause_streak')
    local set, until_, streak = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
    -- Once: a 429 for a call sent before the current pause was decided is the same news, not a new pause.
    if slot > set then
      if pause_min then
        -- A spike arrest Keap does not time: short at first, doubling while 429s keep coming.
        if now - until_ < 2000 then streak = streak + 1 else streak = 0 end
        pause = math.min(pause, pause_min * 2 ^ streak)
      end
      redis.call('HSET', h, 'pause_set', string.format('%.3f', now), 'pause_streak', streak,
                 'pause_until', string.format('%.3f', math.max(until_, now + pause)), 'pause_daily', pause_daily)
    end
  end
  redis.call('PEXPIRE', h, 2 * DAY)
end
return added
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


@dataclass(frozen=True)
class Reservation:
    granted: bool
    wait: float  # seconds from now to the slot (granted) or to the first slot this lane could get
    slot_ms: float | None = None  # Redis time of the slot (granted)
    daily: bool = False  # the wait runs to a daily reset
    now_ms: float = 0.0  # Redis time when the script ran


class RedisClock:
    """Redis server time as seen from this process: the offset of the local wall clock, taken from the recent
    round trip with the shortest delay (as NTP does), so a slot in Redis time becomes a local due time."""

    def __init__(self, samples: int = 32) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=samples)  # (half the round trip, offset)

    def update(self, sent: float, received: float, redis_ms: float) -> None:
        self._samples.append(((received - sent) / 2, (sent + received) / 2 - redis_ms / 1000))

    def local(self, redis_ms: float) -> float:
        return redis_ms / 1000 + min(self._samples)[1]


@dataclass(frozen=True)
class Permit:
    """A granted slot: its Redis time (ms) and the local wall time the call is due to leave."""

    slot_ms: float
    due: float


@dataclass
class SendStats:
    """How late this process's calls left after their slot (ms): what the send margin must cover."""

    sends: int = 0
    late_max_ms: float = 0.0
    pushed: int = 0  # calls that left later than the margin covers, so later slots were moved


class Throttle:
    """Slots for Keap calls in every scope at once; `acquire` before a send, `observe` each answer."""

    def __init__(self, client: redis.Redis, scopes: list[Scope], *, max_block: float = 5.0,
                 backfill_share: float = 0.8, send_margin_ms: float = 20.0, reset_margin_s: float = 2.0):
        if not 0 <= backfill_share <= 1:
            raise ValueError(f"backfill share {backfill_share}: expected a fraction between 0 and 1, e.g. 0.8")
        self.redis = client
        self.scopes = [s for s in scopes if s.windows]
        self.max_block = max_block
        self.backfill_share = backfill_share
        self.send_margin_ms = send_margin_ms
        self.reset_margin_ms = reset_margin_s * 1000
        self.stats = SendStats()
        self.clock = RedisClock()
        self._reserve = client.register_script(_RESERVE)
        self._observe = client.register_script(_OBSERVE)
        self._keys = [k for s in self.scopes for k in (f"{s.key}:state", f"{s.key}:window")]
        self._interval = max((s.interval_ms(send_margin_ms) for s in self.scopes), default=0.0)
        # A backfill call reserves at most two slots ahead: enough to keep the schedule full, little enough that
        # a live call (which may reserve up to max_block ahead) is never queued behind much backfill.
        self.backfill_horizon = max(2 * self._interval, 10.0) / 1000

    @property
    def enabled(self) -> bool:
        return bool(self.scopes)

    def reserve(self, lane: str = "live", now_ms: float | None = None) -> Reservation:
        """Take the next slot if this lane may have it within its horizon; else take nothing and say when."""
        horizon = self.backfill_horizon if lane == "backfill" else self.max_block
        args: list = ["" if now_ms is None else repr(float(now_ms)), lane, horizon * 1000, self.backfill_share,
                      uuid.uuid4().hex, self.reset_margin_ms]
        for s in self.scopes:
            w = s.rolling
            args += [s.interval_ms(self.send_margin_ms), w.limit if w else 0,
                     (w.seconds * 1000 + self.send_margin_ms) if w else 0, s.day_limit]
        granted, wait_us, daily, slot, now = self._reserve(keys=self._keys, args=args)
        return Reservation(bool(granted), int(wait_us) / 1e6, float(slot) if granted else None, bool(daily),
                           float(now))

    def acquire(self) -> Permit | None:
        """Wait for this call's slot; None when no limit is configured.

        Blocks for short waits (up to max_block); raises QuotaWait for longer ones and when the day is used up.
        """
        if not self.scopes:
            return None
        lane = "backfill" if LANE.get() == "backfill" else "live"
        deadline = time.monotonic() + self.max_block
        while True:
            sent = time.time()
            r = self.reserve(lane)
            received = time.time()
            self.clock.update(sent, received, r.now_ms)
            if r.granted:
                # Due at the slot's Redis time, which lies between "sent + wait" and "received + wait": a reply
                # that took long to arrive here has already used part of the wait.
                due = min(max(self.clock.local(r.slot_ms), sent + r.wait), received + r.wait)
                time.sleep(max(0.0, due - time.time()))
                return Permit(r.slot_ms, due)
            if r.daily or time.monotonic() + r.wait > deadline:
                raise QuotaWait(r.wait, daily=r.daily)
            # Come back when the slot is within this lane's horizon; a live call may take it first.
            time.sleep(max(r.wait - self.backfill_horizon, 0.001))

    def observe(self, limits: RateLimits | None, status: int, slot_ms: float | None, *, late_ms: float = 0.0,
                now_ms: float | None = None) -> int:
        """Let one answer correct the shared state; returns how many calls of others were added to the windows.

        `limits` are the answer's x-keap-* headers, `slot_ms` the slot its call was sent in, `late_ms` how long
        after its slot the call left this process.
        """
        if not self.scopes or slot_ms is None:
            return 0
        st = self.stats
        st.sends += 1
        st.late_max_ms = max(st.late_max_ms, late_ms)
        # A quarter of the margin is for this process's own delay (scheduling, GC) before the send, the rest for
        # the way to Keap. A call later than that moves the slots after it (rare: it costs what it moves).
        push = max(0.0, late_ms - self.send_margin_ms / 4)
        st.pushed += push > 0
        if limits is None and status != 429 and not push:
            return 0
        pause, daily = _pause(self.scopes, limits, status)
        said = json.dumps({"status": status, **{k: _plain(v) for k, v in asdict(limits).items() if v is not None}}
                          if limits else {"status": status})
        args: list = ["" if now_ms is None else repr(float(now_ms)), slot_ms, self.send_margin_ms,
                      f"keap:{uuid.uuid4().hex}", push]
        for s in self.scopes:
            seconds, shortest = pause.get(s.kind, (None, None))
            args += _scope_args(s, limits, self.send_margin_ms) + [
                "" if seconds is None else seconds * 1000 + (self.reset_margin_ms if daily else 0),
                "" if shortest is None else 2 * s.interval_ms(self.send_margin_ms), int(daily), said]
        added = int(self._observe(keys=self._keys, args=args))
        if added:
            log.info("keap reports %d more calls in its window than this service made; counted them", added)
        return added

    def snapshot(self, now_ms: float | None = None) -> list[dict]:
        """Each scope's state for operators (`keap-orders quota`): windows, today's use, pause, Keap's word."""
        if now_ms is None:
            seconds, micros = self.redis.time()
            now_ms = seconds * 1000 + micros / 1000
        now = now_ms
        out = []
        for s in self.scopes:
            state = {k.decode(): v.decode() for k, v in self.redis.hgetall(f"{s.key}:state").items()}
            w = s.rolling
            today = int(now // _DAY_MS)
            same_day = state.get("day") == str(today)
            out.append({
                "kind": s.kind, "key": s.key, "limits": ",".join(f"{x.limit}/{_unit(x.seconds)}" for x in s.windows),
                "window": ({"limit": w.limit, "seconds": w.seconds, "used": self.redis.zcount(
                    f"{s.key}:window", now - w.seconds * 1000, "+inf")} if w else None),
                "day": {"limit": s.day_limit, **{k: int(state.get(k, 0)) if same_day else 0
                                                 for k in ("total", "live", "backfill")}},
                "backfill_allowed": math.floor(self.backfill_share * s.day_limit) if s.day_limit else None,
                "calls_per_second": 1000 / interval if (interval := s.interval_ms(self.send_margin_ms)) else None,
                "next_slot_in": max(0.0, float(state.get("tat", 0)) - now) / 1000,
                "paused_for": max(0.0, float(state.get("pause_until", 0)) - now) / 1000,
                "keap_said": json.loads(state["said"]) if "said" in state else None,
                "keap_said_ago": (now - float(state["said_at"])) / 1000 if "said_at" in state else None,
            })
        return out


def _unit(seconds: int) -> str:
    return {1: "s", 60: "min", 86400: "day"}.get(seconds, f"{seconds}s")


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _scope_args(scope: Scope, limits: RateLimits | None, margin_ms: float) -> list:
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


def _pause(scopes: list[Scope], limits: RateLimits | None, status: int) -> tuple[dict[str, tuple], bool]:
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


class _Send:
    """One request on its way: the throttle it needs a slot from and, once taken, the slot and how late it left."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle
        self.permit: Permit | None = None
        self.late_ms = 0.0
        self.taken = False

    def take(self) -> None:
        if not self.taken:
            self.taken = True
            self.permit = self.throttle.acquire()
            if self.permit is not None:
                self.late_ms = (time.time() - self.permit.due) * 1000


_SENDING: ContextVar[_Send | None] = ContextVar("keap_orders_sending", default=None)


class _TakesSlot:
    """A urllib3 connection that takes the call's slot once it is connected, right before writing the request:
    neither waiting for a pooled connection nor a TCP or TLS handshake lies between the slot and the wire."""

    def request(self, method, url, body=None, headers=None, **kwargs):
        sending = _SENDING.get()
        if sending is not None and not sending.taken:
            if self.sock is None:
                self.connect()
            sending.take()
        return super().request(method, url, body=body, headers=headers, **kwargs)


class _HTTPConnection(_TakesSlot, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_TakesSlot, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class ThrottledSession(requests.Session):
    """A requests.Session that sends each request in its own slot of the shared limit and reports every
    answer's x-keap-* headers back to it.

    The slot is taken by the connection right before the request is written (see _TakesSlot), on every adapter
    mounted (KeapClient mounts its own, with connect retries)."""

    def __init__(self, throttle: Throttle):
        self.throttle = throttle
        super().__init__()

    def mount(self, prefix: str, adapter) -> None:
        if isinstance(adapter, HTTPAdapter):
            adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        super().mount(prefix, adapter)

    def send(self, request, **kwargs):
        sending = _Send(self.throttle)
        token = _SENDING.set(sending)
        try:
            response = super().send(request, **kwargs)
        finally:
            _SENDING.reset(token)
        if sending.permit is not None:
            try:
                self.throttle.observe(RateLimits.from_headers(response.headers), response.status_code,
                                      sending.permit.slot_ms, late_ms=sending.late_ms)
            except redis.RedisError as exc:
                # The call itself went through; a lost correction only makes the next ones less exact.
                log.warning("could not record Keap's rate-limit headers: %s", exc)
        return response
