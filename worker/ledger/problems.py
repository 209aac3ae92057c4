"""Problems an operator must look at that are not a failed step: content that conflicts with what the ledger holds
for an external id, and store deliveries that map to no valid order. The latest problem per reference (the order's
external id, or a delivery's id), listed newest first; also the store deliveries already seen (webhook dedupe)."""
from __future__ import annotations

import json
from typing import Any

from worker.ledger.store import Store

DELIVERY_TTL_SECONDS = 7 * 86400  # Shopify retries for 4 hours; a week covers deliveries a day late


class Problems(Store):
    @property
    def problems_key(self) -> str:
        """References with a problem, by the time it was noted."""
        return f"{self.prefix}:problems"

    def problem_key(self, ref: str) -> str:
        return f"{self.prefix}:problem:{ref}"

    def note_problem(self, ref: str, kind: str, reason: str, source: str, differences: list[str] | None = None) -> None:
        """Keep the problem of `ref` (kind: conflict, invalid) with a PII-free reason and where it came from."""
        now = self.now()
        record = {"ref": ref, "kind": kind, "reason": reason, "source": source, "at": now,
                  "differences": differences or []}
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.problem_key(ref), json.dumps(record, separators=(",", ":")))
        pipe.zadd(self.problems_key, {ref: now})
        pipe.execute()

    def problem(self, ref: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.problem_key(ref))
        return json.loads(raw) if raw else None

    def problems(self, limit: int = 100, before: float | None = None) -> list[dict[str, Any]]:
        """The newest `limit` problems noted before `before` (server time): a page, never a scan of all."""
        refs = self.redis.zrevrangebyscore(self.problems_key, f"({before}" if before else "+inf", "-inf", start=0,
                                           num=limit)
        if not refs:
            return []
        found = self.redis.mget([self.problem_key(ref.decode()) for ref in refs])
        return [json.loads(raw) for raw in found if raw]

    def problem_count(self) -> int:
        return self.redis.zcard(self.problems_key)

    def clear_problem(self, ref: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.problem_key(ref))
        pipe.zrem(self.problems_key, ref)
        pipe.execute()

    def delivery_seen(self, source: str, delivery: str) -> bool:
        return bool(self.redis.exists(f"{self.prefix}:delivery:{source}:{delivery}"))

    def mark_delivery(self, source: str, delivery: str) -> None:
        """A store delivery was handled: the same one again is answered without work for a week."""
        self.redis.set(f"{self.prefix}:delivery:{source}:{delivery}", "1", ex=DELIVERY_TTL_SECONDS)

    def status_page(self, status: str, cursor: int = 0, count: int = 100) -> tuple[int, list[str]]:
        """One page of the orders with `status` (SSCAN of its set: a cursor, 0 when done), never the whole ledger."""
        cursor, members = self.redis.sscan(self.status_key(status), cursor=cursor, count=count)
        return int(cursor), sorted(m.decode() for m in members)
