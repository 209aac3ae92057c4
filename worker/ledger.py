"""Per-order state in Redis: the single source of truth for what has been done in Keap.

One hash per order (`{prefix}:order:{external_id}`, no expiry) plus one set per status for look-ups.
Step results are fields named `r:<what>` (e.g. `r:order_id`, `r:payment:<key>`); a field `i:<what>` records
that a non-idempotent write was attempted, so a later attempt knows it must reconcile before writing again.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import redis

STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")

# Moves an order to a new status and keeps the per-status index sets in step, atomically.
_SET_STATUS = """
local old = redis.call('HGET', KEYS[1], 'status')
if old then redis.call('SREM', ARGV[1] .. old, ARGV[3]) end
redis.call('SADD', ARGV[1] .. ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_at', ARGV[4])
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return old
"""

# Registers an order unless it is already queued/running/done (or force): the duplicate-produce guard.
_REGISTER = """
local old = redis.call('HGET', KEYS[1], 'status')
if old and ARGV[5] ~= '1' and (old == 'queued' or old == 'running' or old == 'done') then
  return {0, old}
end
if old then redis.call('SREM', ARGV[1] .. old, ARGV[3]) end
redis.call('SADD', ARGV[1] .. 'queued', ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'queued', 'message', ARGV[2], 'lane', ARGV[4], 'updated_at', ARGV[6])
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[6])
redis.call('HDEL', KEYS[1], 'error', 'error_step', 'error_kind')
return {1, old or ''}
"""


@dataclass
class OrderState:
    """A snapshot of one order's ledger entry."""

    external_id: str
    status: str
    lane: str = "live"
    step: str | None = None
    attempts: int = 0
    error: str | None = None
    error_step: str | None = None
    error_kind: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    message: dict[str, Any] | None = None
    results: dict[str, str] = field(default_factory=dict)
    intents: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, external_id: str, raw: dict[bytes, bytes]) -> "OrderState":
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            external_id=external_id,
            status=data.get("status", "queued"),
            lane=data.get("lane", "live"),
            step=data.get("step"),
            attempts=int(data.get("attempts", 0)),
            error=data.get("error"),
            error_step=data.get("error_step"),
            error_kind=data.get("error_kind"),
            created_at=float(data["created_at"]) if "created_at" in data else None,
            updated_at=float(data["updated_at"]) if "updated_at" in data else None,
            message=json.loads(data["message"]) if "message" in data else None,
            results={k[2:]: v for k, v in data.items() if k.startswith("r:")},
            intents={k[2:]: v for k, v in data.items() if k.startswith("i:")},
        )

    def as_dict(self) -> dict[str, Any]:
        """What an operator sees (`keap-orders status`): everything but the customer data of the message."""
        return {
            "external_id": self.external_id,
            "status": self.status,
            "lane": self.lane,
            "step": self.step,
            "attempts": self.attempts,
            "error": self.error,
            "error_step": self.error_step,
            "error_kind": self.error_kind,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "results": self.results,
        }


class Ledger:
    def __init__(self, client: redis.Redis, prefix: str = "keap-orders"):
        self.redis = client
        self.prefix = prefix
        self._set_status = client.register_script(_SET_STATUS)
        self._register = client.register_script(_REGISTER)

    # keys ---------------------------------------------------------------------------------------------
    def _key(self, external_id: str) -> str:
        return f"{self.prefix}:order:{external_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:status:"

    # producers ----------------------------------------------------------------------------------------
    def register(self, external_id: str, message: dict[str, Any], lane: str, *, force: bool = False) -> tuple[bool, str | None]:
        """Store the message and mark the order queued. Returns (registered, previous status).

        Refused (False) when the order is already queued, running or done, unless `force`. Earlier step results
        are kept, so a re-registered order resumes where it stopped instead of writing to Keap again.
        """
        ok, old = self._register(
            keys=[self._key(external_id)],
            args=[self._index, json.dumps(message, separators=(",", ":")), external_id, lane, "1" if force else "0", time.time()],
        )
        old = old.decode() if isinstance(old, bytes) else old
        return bool(ok), (old or None)

    def update_message(self, external_id: str, message: dict[str, Any]) -> None:
        self.redis.hset(self._key(external_id), "message", json.dumps(message, separators=(",", ":")))

    # reads --------------------------------------------------------------------------------------------
    def get(self, external_id: str) -> OrderState | None:
        raw = self.redis.hgetall(self._key(external_id))
        return OrderState.from_hash(external_id, raw) if raw else None

    def statuses(self, external_ids: Iterable[str]) -> dict[str, str | None]:
        """Status of many orders in one round trip (backfill progress)."""
        ids = list(external_ids)
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hget(self._key(ext), "status")
        return {ext: (s.decode() if s else None) for ext, s in zip(ids, pipe.execute())}

    def count(self, status: str) -> int:
        return self.redis.scard(self._index + status)

    def ids_with_status(self, status: str, limit: int = 100) -> list[str]:
        ids = []
        for raw in self.redis.sscan_iter(self._index + status, count=500):
            ids.append(raw.decode())
            if len(ids) >= limit:
                break
        return sorted(ids)

    # steps --------------------------------------------------------------------------------------------
    def start_step(self, external_id: str, step: str) -> None:
        self._set_status(keys=[self._key(external_id)], args=[self._index, "running", external_id, time.time(), "step", step])
        self.redis.hincrby(self._key(external_id), "attempts", 1)

    def record(self, external_id: str, results: dict[str, str]) -> None:
        """Record Keap effects (ids) and clear their intent markers, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(external_id), mapping={f"r:{what}": value for what, value in results.items()})
        pipe.hdel(self._key(external_id), *(f"i:{what}" for what in results))
        pipe.execute()

    def mark_intent(self, external_id: str, what: str) -> None:
        """Note that a non-idempotent write is about to be sent (before it is sent)."""
        self.redis.hset(self._key(external_id), f"i:{what}", repr(time.time()))

    def finish(self, external_id: str) -> None:
        self._set_status(keys=[self._key(external_id)], args=[self._index, "done", external_id, time.time(), "step", ""])

    def fail(self, external_id: str, step: str, error: str, kind: str) -> None:
        self._set_status(
            keys=[self._key(external_id)],
            args=[self._index, "failed", external_id, time.time(), "error", error, "error_step", step, "error_kind", kind],
        )

    def cancel(self, external_id: str) -> None:
        self._set_status(keys=[self._key(external_id)], args=[self._index, "cancelled", external_id, time.time()])

    # caches shared by all workers (contacts, products, custom fields) ---------------------------------
    def cache_get(self, name: str, key: str) -> str | None:
        value = self.redis.hget(f"{self.prefix}:cache:{name}", key)
        return value.decode() if value is not None else None

    def cache_set(self, name: str, key: str, value: str) -> None:
        self.redis.hset(f"{self.prefix}:cache:{name}", key, value)

    def lock(self, name: str, timeout: float = 30.0, blocking: float | None = None):
        """A Redis lock shared by all workers, e.g. so only one of them creates a missing custom field."""
        return self.redis.lock(f"{self.prefix}:lock:{name}", timeout=timeout,
                               blocking_timeout=timeout if blocking is None else blocking)
