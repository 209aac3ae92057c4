"""Reads for producers, operators and metrics: one order, many statuses, counts, listings, failed orders and the
gauges. Each reads only the keys it names (a status set, the watch set), never the whole ledger."""
from __future__ import annotations

from typing import Iterable, Iterator

from worker.ledger.state import STATUSES, FailedRow, Gauges, OrderState
from worker.ledger.store import Store, text

_FAILED_FIELDS = ("error_step", "error_kind", "lane", "updated_at", "error")


class Reads(Store):
    def get(self, external_id: str) -> OrderState | None:
        raw = self.redis.hgetall(self.order_key(external_id))
        return OrderState.from_hash(external_id, raw) if raw else None

    def statuses(self, external_ids: Iterable[str]) -> dict[str, str | None]:
        """Status of many orders in one round trip (backfill progress)."""
        ids = list(external_ids)
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hget(self.order_key(ext), "status")
        return {ext: text(s) or None for ext, s in zip(ids, pipe.execute())}

    def count(self, status: str) -> int:
        return self.redis.scard(self.status_key(status))

    def ids_with_status(self, status: str, limit: int = 100) -> list[str]:
        ids = []
        for raw in self.redis.sscan_iter(self.status_key(status), count=500):
            ids.append(raw.decode())
            if len(ids) >= limit:
                break
        return sorted(ids)

    def overdue(self, external_ids: Iterable[str], grace: float) -> list[str]:
        """Of these orders, the ones the keeper should have looked at more than `grace` seconds ago."""
        ids = list(external_ids)
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.zscore(self.watch_key, ext)
        limit = self.now() - grace
        return [ext for ext, score in zip(ids, pipe.execute()) if score is not None and score < limit]

    def iter_watched(self) -> Iterator[tuple[str, float]]:
        """Every active order with the time the keeper looks at it next (an operator's view; O(active orders))."""
        for member, score in self.redis.zscan_iter(self.watch_key, count=500):
            yield member.decode(), score

    def failed_rows(self, batch: int = 500) -> Iterator[FailedRow]:
        """Every failed order: its step, error kind, lane, when it failed (last changed) and error. Reads the failed
        orders only (their set), `batch` at a time."""
        ids: list[str] = []
        for raw in self.redis.sscan_iter(self.status_key("failed"), count=batch):
            ids.append(raw.decode())
            if len(ids) >= batch:
                yield from self._failed_rows(ids)
                ids = []
        yield from self._failed_rows(ids)

    def _failed_rows(self, ids: list[str]) -> Iterator[FailedRow]:
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hmget(self.order_key(ext), *_FAILED_FIELDS)
        for ext, values in zip(ids, pipe.execute()):
            step, kind, lane, updated, error = (v.decode() if v else "" for v in values)
            yield FailedRow(ext, step or "-", kind or "-", lane or "live", float(updated or 0), error)

    def gauges(self, queues: Iterable[str] = ()) -> Gauges:
        """Orders per status, messages waiting in each Celery queue (lists on this Redis) and the active orders the
        keeper should have looked at over a minute ago, in one round trip: O(1) per status and queue."""
        queues = list(queues)
        pipe = self.redis.pipeline(transaction=False)
        for status in STATUSES:
            pipe.scard(self.status_key(status))
        for queue in queues:
            pipe.llen(queue)
        pipe.zcount(self.watch_key, "-inf", f"({self.now() - 60}")
        for key in ("audit", "audit:reported", "redis:losses"):
            pipe.zcard(f"{self.prefix}:{key}")
        answers = pipe.execute()
        return Gauges(orders=dict(zip(STATUSES, answers)), queues=dict(zip(queues, answers[len(STATUSES):])),
                      overdue=answers[-4], audits_due=answers[-3], audit_reports=answers[-2], redis_losses=answers[-1])

    def finished_since(self, seconds: float) -> int:
        """Orders done in the last `seconds` (the done index by time: one ZCOUNT)."""
        return self.redis.zcount(self.done_key, self.now() - seconds, "+inf")

    def overdue_ids(self, before: float, limit: int) -> list[str]:
        """Up to `limit` active orders the keeper should have looked at before `before`, most overdue first."""
        return [m.decode() for m in self.redis.zrangebyscore(self.watch_key, "-inf", f"({before}", start=0, num=limit)]
