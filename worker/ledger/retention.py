"""Retention: done orders past DONE_RETENTION_DAYS are compacted to a small marker that keeps their Keap ids
(lua/compact.lua), reading only what is due from the done index; they leave the search indexes (by email, Keap
order id, contact id) at the same time, so those grow with the orders kept, never without end."""
from __future__ import annotations

from worker.ledger.store import Store


class Retention(Store):
    def compact_done(self, older_than: float, limit: int = 500) -> tuple[int, int]:
        """Compact up to `limit` orders that finished more than `older_than` seconds ago to their done marker (see
        lua/compact.lua); returns (looked at, compacted). Reads only those due, oldest first: O(what is due)."""
        now = self.now()
        cutoff = now - older_than
        due = self.redis.zrangebyscore(self.done_key, "-inf", cutoff, start=0, num=limit)
        compacted = 0
        for member in due:
            ext = member.decode()
            compacted += int(self._lua.run("compact", keys=[self.order_key(ext), self.done_key, self.email_key(""),
                                                            self.keap_ids_key, self.contact_key("")],
                                           args=[ext, cutoff, cutoff + 3600]))
        return len(due), compacted

    def done_due(self, older_than: float) -> int:
        """How many done orders finished more than `older_than` seconds ago and are not compacted yet."""
        return self.redis.zcount(self.done_key, "-inf", self.now() - older_than)

    def index_done(self, batch: int = 500) -> int:
        """Put done orders that finished before the done index existed into it, by their last update (a one-off
        after an upgrade: it reads every done order once); returns how many were added."""
        added = 0
        batch_ids: list[str] = []
        for raw in self.redis.sscan_iter(self.status_key("done"), count=batch):
            batch_ids.append(raw.decode())
            if len(batch_ids) >= batch:
                added += self._index_done(batch_ids)
                batch_ids = []
        return added + (self._index_done(batch_ids) if batch_ids else 0)

    def _index_done(self, ids: list[str]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hmget(self.order_key(ext), "done_at", "updated_at", "compacted_at")
        when = {}
        for ext, (done_at, updated, compacted) in zip(ids, pipe.execute()):
            if not compacted and (done_at or updated):
                when[ext] = float(done_at or updated)
        return int(self.redis.zadd(self.done_key, when, nx=True)) if when else 0
