"""Pacing in Redis: each Keap call takes an evenly spaced send slot in every scope at once (reserve.lua), each
answer corrects the shared counts (observe.lua), a 429 pauses every worker on that credential or account, once."""
from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections import deque
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import datetime

import redis

from worker import lua
from worker.keap.quota import RateLimits
from worker.throttle.limits import Scope, keap_figures, pauses

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000
BACKFILL_HORIZON_MS = 10.0
# One script per file; KEYS, ARGV and the result are described at the top of each.
_RESERVE = lua.load("worker.throttle", "reserve")
_OBSERVE = lua.load("worker.throttle", "observe")


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
    voided: int = 0  # permits gone stale before their call could leave (the process stood still): taken again


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
        # A backfill call takes only a slot that is due (within 10 ms): its callers wake for each slot and one of
        # them takes it, which keeps the schedule full (bench/throttle.py: 0.98 of 10/s either way), while a live
        # call (which may reserve up to max_block ahead) finds at most the slot in progress before its own. Two
        # slots ahead, as before, cost a live order of ~4 calls up to 0.8 s (bench/http_live.py: p95 2.8 -> 1.4 s).
        self.backfill_horizon = BACKFILL_HORIZON_MS / 1000
        # A call later than one slot would leave on top of the next one (a stopped process waking with its
        # permits): its permit is void. Within a slot it goes, and moves the schedule by its lateness, but never
        # beyond the farthest a reservation may set it (the ceiling): lateness never adds up to a stall.
        self.stale_ms = max(self._interval, send_margin_ms)
        self.ceiling_ms = max_block * 1000 + self._interval

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

    def stale(self, late_ms: float) -> bool:
        """Whether a permit whose call would leave `late_ms` after its slot is void (the caller takes another)."""
        if late_ms <= self.stale_ms:
            return False
        self.stats.voided += 1
        log.info("a send slot went stale (%.0f ms late: this process stood still); taking another", late_ms)
        return True

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
        pause, daily = pauses(self.scopes, limits, status)
        said = json.dumps({"status": status, **{k: _plain(v) for k, v in asdict(limits).items() if v is not None}}
                          if limits else {"status": status})
        args: list = ["" if now_ms is None else repr(float(now_ms)), slot_ms, self.send_margin_ms,
                      f"keap:{uuid.uuid4().hex}", push, self.ceiling_ms]
        for s in self.scopes:
            seconds, shortest = pause.get(s.kind, (None, None))
            args += keap_figures(s, limits, self.send_margin_ms) + [
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
