"""Finding orders by what an operator has besides the external id: the customer's email (by its digest, never the
address) and a Keap order or contact id; and the orders per lane and status. Each is one index, written where its
data is written (register.lua, record.lua, move.lua) and cleaned by retention (compact.lua): a lookup is one or two
commands, never a scan."""
from __future__ import annotations

import json

from worker.ledger.state import STATUSES
from worker.ledger.store import Store, email_digest, text


class Finds(Store):
    def by_email(self, email: str) -> list[str]:
        """The orders registered with this customer email (trimmed, any case), compacted ones excepted: one
        SMEMBERS of its digest's set."""
        digest = email_digest(email)
        return sorted(m.decode() for m in self.redis.smembers(self.email_key(digest))) if digest else []

    def by_keap_id(self, keap_id: str) -> dict[str, list[str]]:
        """The orders that wrote this Keap id: {"order": [the order whose Keap order it is], "contact": [the
        orders of this Keap contact]}; one round trip (HGET, SMEMBERS)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.keap_ids_key, f"order:{keap_id}")
        pipe.smembers(self.contact_key(keap_id))
        order, contact = pipe.execute()
        return {"order": [text(order)] if order else [], "contact": sorted(m.decode() for m in contact)}

    def by_lane(self) -> dict[str, dict[str, int]]:
        """Orders per lane and status ({lane: {status: n}}, every status), kept at each move: one HGETALL."""
        lanes: dict[str, dict[str, int]] = {}
        for field, count in self.redis.hgetall(self.lanes_key).items():
            lane, _, status = field.decode().rpartition(":")
            lanes.setdefault(lane, dict.fromkeys(STATUSES, 0))[status] = int(count)
        return lanes

    def count_lanes(self) -> dict[str, dict[str, int]]:
        """Count the orders per lane from the status sets (one script: O(orders), Redis waits meanwhile) and keep
        the counts: after an upgrade, for the orders that moved before the counts existed."""
        self._lua.run("count_lanes", keys=[self.status_key(""), self.order_key(""), self.lanes_key],
                      args=list(STATUSES))
        return self.by_lane()

    def index_existing(self, batch: int = 500) -> int:
        """Put orders registered or written before the search indexes existed into them (email digest, Keap order
        and contact id): reads every order not compacted once, `batch` at a time; returns how many were read."""
        seen = 0
        for status in STATUSES:
            ids: list[str] = []
            for raw in self.redis.sscan_iter(self.status_key(status), count=batch):
                ids.append(raw.decode())
                if len(ids) >= batch:
                    seen += self._index(ids)
                    ids = []
            seen += self._index(ids)
        return seen

    def _index(self, ids: list[str]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for ext in ids:
            pipe.hmget(self.order_key(ext), "message", "r:order_id", "r:contact_id", "compacted_at")
        rows = pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for ext, (message, order_id, contact_id, compacted) in zip(ids, rows):
            if compacted:
                continue
            digest = email_digest((json.loads(message).get("customer") or {}).get("email")) if message else ""
            if digest:
                pipe.sadd(self.email_key(digest), ext)
                pipe.hset(self.order_key(ext), "email_digest", digest)
            if order_id:
                pipe.hsetnx(self.keap_ids_key, f"order:{text(order_id)}", ext)
            if contact_id:
                pipe.sadd(self.contact_key(text(contact_id)), ext)
        pipe.execute()
        return len(ids)
