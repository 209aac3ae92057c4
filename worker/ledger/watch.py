"""What the keeper reads and moves: the watch set (active orders by the time they must be looked at) and the
orders held for an event. It reads only what is due, never the whole ledger."""
from __future__ import annotations

from worker.ledger.state import Due
from worker.ledger.store import Store, text


class Watch(Store):
    def due(self, limit: int = 200) -> list[str]:
        return [member.decode() for member in
                self.redis.zrangebyscore(self.watch_key, "-inf", self.now(), start=0, num=limit)]

    def take_due(self, external_id: str, look_again_in: float) -> Due | None:
        """Take a due order for `look_again_in` seconds (another keeper skips it meanwhile); None if not due."""
        raw = self._lua.run("take_due", keys=[self.order_key(external_id), self.watch_key,
                                              self.lease_key(f"order:{external_id}")],
                            args=[external_id, look_again_in])
        if raw is None:
            return None
        status, step, lane, single, parked, redrives, reason, alive, now = (text(v) for v in raw)
        return Due(external_id, status, step, lane or "live", single, float(parked) if parked else None,
                   int(redrives or 0), reason, alive == "1", float(now))

    def forget_watch(self, external_id: str) -> None:
        self.redis.zrem(self.watch_key, external_id)

    def watch_at(self, external_id: str, when: float) -> None:
        self.redis.zadd(self.watch_key, {external_id: when})

    def hold(self, external_id: str, group: str) -> None:
        """Remember a parked order as waiting for one event (e.g. "reauth"), to release them all when it comes."""
        self.redis.sadd(self.held_key(group), external_id)

    def held_count(self, group: str) -> int:
        return self.redis.scard(self.held_key(group))

    def release_held(self, group: str) -> int:
        """The event came: every order held for it is due now (the keeper's next pass sends them)."""
        key, released = self.held_key(group), 0
        now = self.now()
        while True:
            batch = self.redis.spop(key, 500)
            if not batch:
                return released
            pipe = self.redis.pipeline(transaction=False)
            for member in batch:
                ext = member.decode()
                pipe.hset(self.order_key(ext), "parked_until", now)
                pipe.zadd(self.watch_key, {ext: now}, xx=True)
            pipe.execute()
            released += len(batch)
