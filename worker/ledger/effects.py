"""What an order did in Keap: results (Keap ids) and intents (a non-idempotent write was sent, its answer not
recorded yet), fenced by the order's lease."""
from __future__ import annotations

import json

from worker.ledger.leases import LeaseLost
from worker.ledger.store import Store


class Effects(Store):
    def record(self, external_id: str, results: dict[str, str]) -> None:
        """Record Keap effects (ids) and clear their intent markers, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.order_key(external_id), mapping={f"r:{what}": value for what, value in results.items()})
        pipe.hdel(self.order_key(external_id), *(f"i:{what}" for what in results))
        pipe.execute()

    def mark_intent(self, external_id: str, what: str, token: str | None) -> None:
        """Note that a non-idempotent write is about to be sent (before it is sent), durably as far as Redis allows
        (loss.py). Raises LeaseLost when the caller no longer holds the order's lease: another worker may be writing."""
        if not self._lua.run("mark_intent", keys=[self.order_key(external_id), self.lease_key(f"order:{external_id}")],
                             args=[what, token or ""]):
            raise LeaseLost(f"order {external_id}: lease lost before writing {what}")
        self.await_durable(external_id, what)

    def clear_intent(self, external_id: str, what: str) -> None:
        """The write was refused or never sent (Keap said so): nothing to reconcile."""
        self.redis.hdel(self.order_key(external_id), f"i:{what}")

    def confirm_intents(self, external_id: str, prefix: str) -> list[str]:
        """An operator checked Keap and found none of these unanswered writes applied: the step may write them
        again after one more lookup (`write_once`), instead of failing the order. The order is failed: no worker
        holds it, so nothing races this read-modify-write."""
        key = self.order_key(external_id)
        names = []
        for name, raw in self.redis.hgetall(key).items():
            name = name.decode()
            if name.startswith("i:") and name[2:].startswith(prefix):
                self.redis.hset(key, name, json.dumps({**json.loads(raw), "checked_by_operator": True}))
                names.append(name[2:])
        return names

    def note_check(self, external_id: str, what: str) -> int:
        """One more lookup found nothing; returns how many have."""
        return int(self._lua.run("note_check", keys=[self.order_key(external_id)], args=[what]))
