"""Per-order state in Redis: the single source of truth for what has been done in Keap, and what is due when.

Keys under the prefix:
  order:{id}   hash: status, step, lane, ticket, the message, results `r:<what>` (Keap ids), intents `i:<what>`
               (a non-idempotent write was sent: {"at": server time, "checks": lookups since})
  status:{s}   one set per status, for counts and listings
  watch        sorted set of active orders by the time the keeper must look at them: when a parked order wakes,
               or the deadline by which a queued or running order must have moved. The keeper reads only what is
               due, never the whole ledger.
  lease:{name} a lease (token, expiry) on an order or a shared resource, renewed while its holder works
  done         sorted set of done orders by the time they finished: retention compacts what is older than
               DONE_RETENTION_DAYS to a small marker (`compact_done`), reading only what is due

Every status change is one Lua script using Redis server time, so all hosts agree on the clock. `cancelled` is
final: no script moves an order out of it.
"""
from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import redis

STATUSES = ("queued", "running", "waiting", "done", "failed", "cancelled")
ACTIVE = ("queued", "running", "waiting")
FINAL = ("done", "failed", "cancelled")

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"
# Moves the order (KEYS[1]) from its status to ARGV[1]; KEYS[2] is the status-set prefix, ARGV[2] the id.
_MOVE = """
local function move(order, index, id, new)
  local old = redis.call('HGET', order, 'status')
  if old then redis.call('SREM', index .. old, id) end
  redis.call('SADD', index .. new, id)
  redis.call('HSET', order, 'status', new)
  return old
end
"""

# KEYS: order, status prefix, watch. ARGV: id, message, lane, force, from step ('' = resume), first step,
# ticket, seconds to start within. Returns {registered, previous status, step}.
_REGISTER = _NOW + _MOVE + """
local old = redis.call('HGET', KEYS[1], 'status')
if old == 'cancelled' or (old and ARGV[4] ~= '1' and old ~= 'failed') then return {0, old, ''} end
local step = ARGV[5]
if step == '' then
  step = (old == 'failed' and redis.call('HGET', KEYS[1], 'error_step')) or ARGV[6]
end
move(KEYS[1], KEYS[2], ARGV[1], 'queued')
redis.call('HSET', KEYS[1], 'message', ARGV[2], 'lane', ARGV[3], 'step', step, 'ticket', ARGV[7],
           'updated_at', now, 'redrives', 0)
redis.call('HSETNX', KEYS[1], 'created_at', now)
redis.call('HDEL', KEYS[1], 'error', 'error_step', 'error_kind', 'parked_until', 'parked_reason', 'single',
           'compacted_at')
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[8]), ARGV[1])
return {1, old or '', step}
"""

# KEYS: order, status prefix, watch, lease. ARGV: id, step, token, lease ms, ticket ('' for a step sent on its
# own), the steps' names joined by ',' (to compare positions). Returns {verdict, status, lane}.
_CLAIM = _NOW + _MOVE + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', '', ''} end
local lane = redis.call('HGET', KEYS[1], 'lane') or 'live'
if status == 'cancelled' then return {'cancelled', status, lane} end
if ARGV[5] ~= '' then
  -- A chain message counts only for the current sending of an active order, and never for a step behind it.
  if redis.call('HGET', KEYS[1], 'ticket') ~= ARGV[5] then return {'stale', status, lane} end
  if status ~= 'queued' and status ~= 'running' and status ~= 'waiting' then return {'stale', status, lane} end
  local names = ',' .. ARGV[6] .. ','
  local current = string.find(names, ',' .. (redis.call('HGET', KEYS[1], 'step') or '') .. ',', 1, true)
  if current and current > string.find(names, ',' .. ARGV[2] .. ',', 1, true) then return {'stale', status, lane} end
end
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[3] then return {'busy', status, lane} end
redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'updated_at', now)
local deadline = now + tonumber(ARGV[4]) / 1000 + 1
if ARGV[5] ~= '' then
  move(KEYS[1], KEYS[2], ARGV[1], 'running')
  redis.call('HSET', KEYS[1], 'step', ARGV[2], 'step_started_at', now)
  redis.call('HDEL', KEYS[1], 'parked_until', 'parked_reason')
  redis.call('ZADD', KEYS[3], deadline, ARGV[1])
elseif status == 'done' or status == 'failed' then
  redis.call('ZADD', KEYS[3], deadline, ARGV[1])
end
return {'ok', status, lane}
"""

# The end of a step run. KEYS: order, status prefix, watch, lease, done index. ARGV: id, token, ticket ('' = single
# step), what: next|done|park|retry|fail|single, then: next step | parked until | seconds to start within | error
# fields.
_SETTLE_RUN = _NOW + _MOVE + """
local status = redis.call('HGET', KEYS[1], 'status')
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
if not status or status == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', now)
local what = ARGV[4]
if what == 'fail' and ARGV[3] == '' and status == 'failed' then
  -- A step sent on its own failed on an order that had failed already: the first failure stays the one to fix
  -- (and the step a retry resumes at).
  redis.call('HDEL', KEYS[1], 'single')
  return 1
end
if what == 'fail' then
  move(KEYS[1], KEYS[2], ARGV[1], 'failed')
  redis.call('HSET', KEYS[1], 'error', ARGV[5], 'error_step', ARGV[6], 'error_kind', ARGV[7])
  redis.call('HDEL', KEYS[1], 'single', 'parked_until', 'parked_reason')
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
if ARGV[3] == '' then
  if what == 'single' and redis.call('HGET', KEYS[1], 'single') == ARGV[5] then
    redis.call('HDEL', KEYS[1], 'single')
    if status == 'done' or status == 'failed' then redis.call('ZREM', KEYS[3], ARGV[1]) end
  end
  return 1
end
if redis.call('HGET', KEYS[1], 'ticket') ~= ARGV[3] then return 0 end
if what == 'done' then
  move(KEYS[1], KEYS[2], ARGV[1], 'done')
  redis.call('HSET', KEYS[1], 'done_at', now)
  redis.call('ZADD', KEYS[5], now, ARGV[1])
  redis.call('HDEL', KEYS[1], 'step', 'parked_until', 'parked_reason')
  if not redis.call('HGET', KEYS[1], 'single') then redis.call('ZREM', KEYS[3], ARGV[1]) end
elseif what == 'next' or what == 'retry' then
  move(KEYS[1], KEYS[2], ARGV[1], 'queued')
  redis.call('HSET', KEYS[1], 'step', ARGV[5])
  if what == 'next' then redis.call('HSET', KEYS[1], 'redrives', 0) end
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
elseif what == 'park' then
  move(KEYS[1], KEYS[2], ARGV[1], 'waiting')
  redis.call('HSET', KEYS[1], 'step', ARGV[5], 'parked_until', ARGV[6], 'parked_reason', ARGV[7])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[6]), ARGV[1])
end
return 1
"""

# The keeper takes a due order (KEYS: order, watch, lease; ARGV: id, seconds until it may look again) and
# gets what it needs to decide. Two keepers never take the same order at the same time.
_TAKE_DUE = _NOW + """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > now then return nil end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'status', 'step', 'lane', 'single', 'parked_until', 'redrives',
                          'parked_reason')
for i = 1, #fields do if not fields[i] then fields[i] = '' end end
table.insert(fields, redis.call('EXISTS', KEYS[3]))
table.insert(fields, tostring(now))
return fields
"""

# The keeper sends an order again. KEYS: order, status prefix, watch. ARGV: id, expected status, new ticket,
# seconds to start within, counts as a re-drive (1/0). Returns the new ticket, or false if the order moved.
_RESEND = _NOW + _MOVE + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= ARGV[2] then return false end
if status == 'done' or status == 'failed' then
  if not redis.call('HGET', KEYS[1], 'single') then return false end
else
  move(KEYS[1], KEYS[2], ARGV[1], 'queued')
  redis.call('HSET', KEYS[1], 'ticket', ARGV[3])
end
redis.call('HDEL', KEYS[1], 'parked_until', 'parked_reason')
if ARGV[5] == '1' then
  redis.call('HINCRBY', KEYS[1], 'redrives', 1)
  redis.call('HINCRBY', KEYS[1], 'resends', 1)
end
redis.call('HSET', KEYS[1], 'updated_at', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return ARGV[3]
"""

# KEYS: order, lease. ARGV: what, token. The fence: an intent is written only while the caller holds the lease.
_MARK_INTENT = _NOW + """
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'i:' .. ARGV[1], cjson.encode({at = now, checks = 0}))
return 1
"""

_NOTE_CHECK = """
local raw = redis.call('HGET', KEYS[1], 'i:' .. ARGV[1])
if not raw then return 0 end
local intent = cjson.decode(raw)
intent.checks = (intent.checks or 0) + 1
redis.call('HSET', KEYS[1], 'i:' .. ARGV[1], cjson.encode(intent))
return intent.checks
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Retention. KEYS: order, done index. ARGV: id, cutoff (finished before it), when to look again at an order that
# is busy with a step sent on its own. A done order keeps its status, when it finished and the ids of every write
# that has no idempotency key in Keap (what a step checks before writing, so a re-sent order writes nothing again);
# the message (the customer's data), custom-field values, checks, errors and counters go.
_COMPACT = _NOW + """
local done_at = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not done_at or tonumber(done_at) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'done' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'single') == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 0
end
local fields = redis.call('HGETALL', KEYS[1])
local keep = {'status', 'done', 'done_at', done_at, 'compacted_at', tostring(now)}
for i = 1, #fields, 2 do
  local name = fields[i]
  if name == 'r:order_id' or name == 'r:contact_id' or string.match(name, '^r:item:') or
     string.match(name, '^r:payment:') or string.match(name, '^r:subscription:') or string.match(name, '^r:invoice:') then
    table.insert(keep, name)
    table.insert(keep, fields[i + 1])
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(keep))
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

_CANCEL = _MOVE + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
move(KEYS[1], KEYS[2], ARGV[1], 'cancelled')
redis.call('HDEL', KEYS[1], 'single', 'parked_until', 'parked_reason')
redis.call('ZREM', KEYS[3], ARGV[1])
return status
"""


class LeaseLost(Exception):
    """This worker's lease ran out (it was paused or cut off longer than the lease) and another may hold it now:
    it must not write to Keap for this order any more."""


@dataclass
class Intent:
    at: float  # Redis server time when the write was about to be sent
    checks: int = 0  # lookups since that found nothing


@dataclass
class OrderState:
    """A snapshot of one order's ledger entry."""

    external_id: str
    status: str
    lane: str = "live"
    step: str | None = None
    ticket: str | None = None
    single: str | None = None  # a step sent on its own for a done/failed order, not finished yet
    attempts: int = 0
    redrives: int = 0  # re-sent by the keeper since the last progress (bounded by MAX_REDRIVES)
    resends: int = 0  # re-sent by the keeper in all
    error: str | None = None
    error_step: str | None = None
    error_kind: str | None = None
    parked_until: float | None = None
    parked_reason: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    step_started_at: float | None = None
    done_at: float | None = None
    compacted_at: float | None = None  # retention dropped the message; the Keap ids stay (exactly once)
    message: dict[str, Any] | None = None
    results: dict[str, str] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, external_id: str, raw: dict[bytes, bytes]) -> OrderState:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        number = lambda name: float(data[name]) if data.get(name) else None  # noqa: E731
        return cls(
            external_id=external_id,
            status=data.get("status", "queued"),
            lane=data.get("lane", "live"),
            step=data.get("step") or None,
            ticket=data.get("ticket"),
            single=data.get("single"),
            attempts=int(data.get("attempts", 0)),
            redrives=int(data.get("redrives", 0)),
            resends=int(data.get("resends", 0)),
            error=data.get("error"),
            error_step=data.get("error_step"),
            error_kind=data.get("error_kind"),
            parked_until=number("parked_until"),
            parked_reason=data.get("parked_reason"),
            created_at=number("created_at"),
            updated_at=number("updated_at"),
            step_started_at=number("step_started_at"),
            done_at=number("done_at"),
            compacted_at=number("compacted_at"),
            message=json.loads(data["message"]) if "message" in data else None,
            results={k[2:]: v for k, v in data.items() if k.startswith("r:")},
            intents={k[2:]: Intent(**json.loads(v)) for k, v in data.items() if k.startswith("i:")},
        )

    def as_dict(self) -> dict[str, Any]:
        """What an operator sees (`keap-orders status`): everything but the customer data of the message."""
        return {
            "external_id": self.external_id, "status": self.status, "lane": self.lane, "step": self.step,
            "pending_step": self.single,
            "attempts": self.attempts, "redrives": self.redrives, "resends": self.resends, "error": self.error, "error_step": self.error_step,
            "error_kind": self.error_kind, "parked_until": self.parked_until, "parked_reason": self.parked_reason,
            "created_at": self.created_at, "updated_at": self.updated_at, "done_at": self.done_at,
            "compacted_at": self.compacted_at, "results": self.results,
            "pending_writes": sorted(self.intents),
        }


@dataclass(frozen=True)
class Due:
    """A due order as the keeper sees it (see `Ledger.take_due`)."""

    external_id: str
    status: str
    step: str
    lane: str
    single: str
    parked_until: float | None
    redrives: int
    parked_reason: str
    lease_alive: bool
    now: float


class Ledger:
    def __init__(self, client: redis.Redis, prefix: str = "keap-orders"):
        self.redis = client
        self.prefix = prefix
        scripts = {"_register": _REGISTER, "_claim": _CLAIM, "_settle": _SETTLE_RUN, "_take_due": _TAKE_DUE,
                   "_resend": _RESEND, "_mark_intent": _MARK_INTENT, "_note_check": _NOTE_CHECK, "_renew": _RENEW,
                   "_release": _RELEASE, "_cancel": _CANCEL, "_compact": _COMPACT}
        for name, source in scripts.items():
            setattr(self, name, client.register_script(source))

    # keys -----------------------------------------------------------------------------------------------
    def _key(self, external_id: str) -> str:
        return f"{self.prefix}:order:{external_id}"

    def order_key(self, external_id: str) -> str:
        """The order's hash (for readers that fetch many orders' fields in one round trip)."""
        return self._key(external_id)

    def lease_key(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:status:"

    @property
    def _watch(self) -> str:
        return f"{self.prefix}:watch"

    @property
    def _done(self) -> str:
        return f"{self.prefix}:done"

    def status_key(self, status: str) -> str:
        """The set of the orders with this status (its SCARD is their number)."""
        return self._index + status

    @property
    def watch_key(self) -> str:
        return self._watch

    def now(self) -> float:
        """Redis server time: the clock every host and every Lua script here shares."""
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    # producers ------------------------------------------------------------------------------------------
    def register(self, external_id: str, message: dict[str, Any], lane: str, *, first_step: str,
                 from_step: str | None = None, force: bool = False, start_within: float = 300.0,
                 ) -> tuple[bool, str | None, str, str]:
        """Store the message, mark the order queued, return (registered, previous status, step to send, ticket).

        Refused when the order is queued, running, waiting or done (unless `force`) and always when cancelled.
        A failed order resumes at its failed step. Earlier results are kept, so a re-registered order resumes
        where it stopped instead of writing to Keap again. The ticket goes with the messages sent for it.
        """
        ticket = uuid.uuid4().hex[:12]
        ok, old, step = self._register(
            keys=[self._key(external_id), self._index, self._watch],
            args=[external_id, json.dumps(message, separators=(",", ":")), lane, "1" if force else "0",
                  from_step or "", first_step, ticket, start_within],
        )
        return bool(ok), (_text(old) or None), _text(step), ticket

    def update(self, external_id: str, change: Callable[[OrderState], dict[str, Any]]) -> OrderState:
        """Change an order atomically: `change(state)` returns the fields to set (it may raise to refuse); it is
        called again if another producer changed the order meanwhile. Cancelled orders are refused."""
        key = self._key(external_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hgetall(key)
                    state = OrderState.from_hash(external_id, raw) if raw else None
                    if state is None:
                        raise LookupError(f"order {external_id}: unknown; send the whole order with enqueue_order "
                                          "first")
                    if state.status == "cancelled":
                        raise ValueError(f"order {external_id}: cancelled; a cancelled order is final")
                    fields = change(state)
                    pipe.multi()
                    pipe.hset(key, mapping={k: (json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list))
                                                else v) for k, v in fields.items()})
                    pipe.execute()
                    return state
                except redis.WatchError:
                    continue

    def watch_single(self, external_id: str, step: str, start_within: float) -> None:
        """A step sent on its own for a done or failed order: the keeper sees it through if its worker dies."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(external_id), "single", step)
        pipe.zadd(self._watch, {external_id: self.now() + start_within})
        pipe.execute()

    def cancel(self, external_id: str) -> str | None:
        """Cancel for good; returns the status it had (None if unknown). The step running now finishes its call,
        but nothing runs after it."""
        return _text(self._cancel(keys=[self._key(external_id), self._index, self._watch], args=[external_id])) or None

    def clear_intents(self, external_id: str, prefix: str) -> list[str]:
        """Forget unanswered writes (an operator checked Keap and found none of them applied)."""
        state = self.get(external_id)
        names = [what for what in (state.intents if state else {}) if what.startswith(prefix)]
        if names:
            self.redis.hdel(self._key(external_id), *(f"i:{what}" for what in names))
        return names

    # reads ----------------------------------------------------------------------------------------------
    def get(self, external_id: str) -> OrderState | None:
        raw = self.redis.hgetall(self._key(external_id))
        return OrderState.from_hash(external_id, raw) if raw else None

    def statuses(self, external_ids: Iterable[str]) -> dict[str, str | None]:
        """Status of many orders in one round trip (backfill progress)."""
        ids = list(external_ids)
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hget(self._key(ext), "status")
        return {ext: _text(s) or None for ext, s in zip(ids, pipe.execute())}

    def count(self, status: str) -> int:
        return self.redis.scard(self._index + status)

    def ids_with_status(self, status: str, limit: int = 100) -> list[str]:
        ids = []
        for raw in self.redis.sscan_iter(self._index + status, count=500):
            ids.append(raw.decode())
            if len(ids) >= limit:
                break
        return sorted(ids)

    def overdue(self, external_ids: Iterable[str], grace: float) -> list[str]:
        """Of these orders, the ones the keeper should have looked at more than `grace` seconds ago."""
        ids = list(external_ids)
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.zscore(self._watch, ext)
        limit = self.now() - grace
        return [ext for ext, score in zip(ids, pipe.execute()) if score is not None and score < limit]

    def iter_watched(self) -> Iterator[tuple[str, float]]:
        """Every active order with the time the keeper looks at it next (an operator's view; O(active orders))."""
        for member, score in self.redis.zscan_iter(self._watch, count=500):
            yield member.decode(), score

    # a step run -----------------------------------------------------------------------------------------
    def claim(self, external_id: str, step: str, token: str, lease_seconds: float, ticket: str | None,
              step_names: Iterable[str]) -> tuple[str, str, str]:
        """Start a run of `step`: (verdict, status, lane). verdict: ok (the lease is ours), busy (another run holds
        the order), stale (a message of an earlier sending: drop it), cancelled, missing."""
        verdict, status, lane = self._claim(
            keys=[self._key(external_id), self._index, self._watch, self.lease_key(f"order:{external_id}")],
            args=[external_id, step, token, int(lease_seconds * 1000), ticket or "", ",".join(step_names)],
        )
        return _text(verdict), _text(status), _text(lane)

    def end_run(self, external_id: str, token: str, ticket: str | None, what: str, *args: Any) -> bool:
        """End a run and release its lease: next (step, start within s), retry (step, start within s), park (step,
        until, reason), done, single (step), fail (error, step, kind). False if the order moved on without us."""
        return bool(self._settle(
            keys=[self._key(external_id), self._index, self._watch, self.lease_key(f"order:{external_id}"),
                  self._done],
            args=[external_id, token, ticket or "", what, *args]))

    def record(self, external_id: str, results: dict[str, str]) -> None:
        """Record Keap effects (ids) and clear their intent markers, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(external_id), mapping={f"r:{what}": value for what, value in results.items()})
        pipe.hdel(self._key(external_id), *(f"i:{what}" for what in results))
        pipe.execute()

    def mark_intent(self, external_id: str, what: str, token: str | None) -> None:
        """Note that a non-idempotent write is about to be sent (before it is sent). Raises LeaseLost when the
        caller no longer holds the order's lease: another worker may be writing."""
        if not self._mark_intent(keys=[self._key(external_id), self.lease_key(f"order:{external_id}")],
                                 args=[what, token or ""]):
            raise LeaseLost(f"order {external_id}: lease lost before writing {what}")

    def clear_intent(self, external_id: str, what: str) -> None:
        """The write was refused or never sent (Keap said so): nothing to reconcile."""
        self.redis.hdel(self._key(external_id), f"i:{what}")

    def note_check(self, external_id: str, what: str) -> int:
        """One more lookup found nothing; returns how many have."""
        return int(self._note_check(keys=[self._key(external_id)], args=[what]))

    # the keeper -----------------------------------------------------------------------------------------
    def due(self, limit: int = 200) -> list[str]:
        return [member.decode() for member in
                self.redis.zrangebyscore(self._watch, "-inf", self.now(), start=0, num=limit)]

    def take_due(self, external_id: str, look_again_in: float) -> Due | None:
        raw = self._take_due(keys=[self._key(external_id), self._watch, self.lease_key(f"order:{external_id}")],
                             args=[external_id, look_again_in])
        if raw is None:
            return None
        status, step, lane, single, parked, redrives, reason, alive, now = (_text(v) for v in raw)
        return Due(external_id, status, step, lane or "live", single, float(parked) if parked else None,
                   int(redrives or 0), reason, alive == "1", float(now))

    def resend(self, external_id: str, status: str, start_within: float, *, redrive: bool) -> str | None:
        """Mark a due order sent again (new ticket: older messages of it are dropped); None if it moved."""
        ticket = uuid.uuid4().hex[:12]
        sent = self._resend(keys=[self._key(external_id), self._index, self._watch],
                            args=[external_id, status, ticket, start_within, "1" if redrive else "0"])
        return _text(sent) or None

    def forget_watch(self, external_id: str) -> None:
        self.redis.zrem(self._watch, external_id)

    def hold(self, external_id: str, group: str) -> None:
        """Remember a parked order as waiting for one event (e.g. "reauth"), to release them all when it comes."""
        self.redis.sadd(f"{self.prefix}:held:{group}", external_id)

    def held_count(self, group: str) -> int:
        return self.redis.scard(f"{self.prefix}:held:{group}")

    def release_held(self, group: str) -> int:
        """The event came: every order held for it is due now (the keeper's next pass sends them)."""
        key, released = f"{self.prefix}:held:{group}", 0
        now = self.now()
        while True:
            batch = self.redis.spop(key, 500)
            if not batch:
                return released
            pipe = self.redis.pipeline(transaction=False)
            for member in batch:
                ext = member.decode()
                pipe.hset(self._key(ext), "parked_until", now)
                pipe.zadd(self._watch, {ext: now}, xx=True)
            pipe.execute()
            released += len(batch)

    def watch_at(self, external_id: str, when: float) -> None:
        self.redis.zadd(self._watch, {external_id: when})

    def fail(self, external_id: str, step: str, error: str, kind: str) -> None:
        """Mark the order failed from outside a step run (the keeper, a producer that could not send)."""
        self.end_run(external_id, "", None, "fail", error, step, kind)

    # retention ------------------------------------------------------------------------------------------
    def compact_done(self, older_than: float, limit: int = 500) -> tuple[int, int]:
        """Compact up to `limit` orders that finished more than `older_than` seconds ago to their done marker (see
        _COMPACT); returns (looked at, compacted). Reads only those due, oldest first: O(what is due)."""
        now = self.now()
        cutoff = now - older_than
        due = self.redis.zrangebyscore(self._done, "-inf", cutoff, start=0, num=limit)
        compacted = 0
        for member in due:
            ext = member.decode()
            compacted += int(self._compact(keys=[self._key(ext), self._done], args=[ext, cutoff, cutoff + 3600]))
        return len(due), compacted

    def done_due(self, older_than: float) -> int:
        """How many done orders finished more than `older_than` seconds ago and are not compacted yet."""
        return self.redis.zcount(self._done, "-inf", self.now() - older_than)

    def index_done(self, batch: int = 500) -> int:
        """Put done orders that finished before the done index existed into it, by their last update (a one-off
        after an upgrade: it reads every done order once); returns how many were added."""
        added = 0
        batch_ids: list[str] = []
        for raw in self.redis.sscan_iter(self._index + "done", count=batch):
            batch_ids.append(raw.decode())
            if len(batch_ids) >= batch:
                added += self._index_done(batch_ids)
                batch_ids = []
        return added + (self._index_done(batch_ids) if batch_ids else 0)

    def _index_done(self, ids: list[str]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hmget(self._key(ext), "done_at", "updated_at", "compacted_at")
        when = {}
        for ext, (done_at, updated, compacted) in zip(ids, pipe.execute()):
            if not compacted and (done_at or updated):
                when[ext] = float(done_at or updated)
        return int(self.redis.zadd(self._done, when, nx=True)) if when else 0

    # caches shared by all workers (contacts, products, custom fields) -----------------------------------
    def cache_get(self, name: str, key: str) -> str | None:
        return _text(self.redis.hget(f"{self.prefix}:cache:{name}", key)) or None

    def cache_set(self, name: str, key: str, value: str) -> None:
        self.redis.hset(f"{self.prefix}:cache:{name}", key, value)

    def cache_delete(self, name: str, key: str) -> None:
        self.redis.hdel(f"{self.prefix}:cache:{name}", key)

    # leases -----------------------------------------------------------------------------------------------
    def renew(self, name: str, token: str, seconds: float) -> bool:
        return bool(self._renew(keys=[self.lease_key(name)], args=[token, int(seconds * 1000)]))

    def release(self, name: str, token: str) -> None:
        self._release(keys=[self.lease_key(name)], args=[token])

    @contextmanager
    def lease(self, name: str, seconds: float, wait: float) -> Iterator[Lease]:
        """Hold a named lease (e.g. "contact:<hash>") while the block runs, renewed in the background; waits up
        to `wait` seconds for it, then raises TimeoutError."""
        lease = Lease(self, name, seconds)
        if not lease.acquire(wait):
            raise TimeoutError(f"lease {name} is held by another worker")
        try:
            yield lease
        finally:
            lease.release()


class Lease:
    """A Redis key with a token and an expiry, renewed every third of its lifetime by a background thread while
    the holder works: gone within `seconds` of its holder's death, never before it while the holder lives."""

    def __init__(self, ledger: Ledger, name: str, seconds: float, token: str | None = None):
        self.ledger, self.name, self.seconds = ledger, name, seconds
        self.token = token or uuid.uuid4().hex
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        key, deadline = self.ledger.lease_key(self.name), self.ledger.now() + wait
        while not self.ledger.redis.set(key, self.token, nx=True, px=int(self.seconds * 1000)):
            if self.ledger.now() >= deadline:
                return False
            threading.Event().wait(0.05)
        self.keep()
        return True

    def keep(self) -> None:
        """Start renewing (for a lease taken by a script, such as a step's claim)."""
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.ledger.renew(self.name, self.token, self.seconds):
                    self.lost.set()
                    return
            except redis.RedisError:
                continue  # the next renewal may get through; the lease lasts three periods

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.seconds)
        try:
            self.ledger.release(self.name, self.token)
        except redis.RedisError:
            pass  # it expires by itself


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
