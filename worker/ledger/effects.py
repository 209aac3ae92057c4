"""What an order did in Keap: results (Keap ids) and intents (a non-idempotent write was sent, its answer not
recorded yet), fenced by the order's lease; answers that came after the lease was lost are kept as orphans."""
from __future__ import annotations

import json
from dataclasses import dataclass

from worker.ledger.leases import LeaseLost
from worker.ledger.store import Store


class OrphanWrite(LeaseLost):
    """Keap answered a write after this worker had lost the order's lease: the answer is kept in the orphans (see
    `Effects.orphans`), never recorded over what the run that took over recorded."""


@dataclass(frozen=True)
class Orphan:
    """A write Keap applied whose answer came without the lease: the order, the write, Keap's ids, when (Redis
    time)."""

    external_id: str
    what: str
    results: dict[str, str]
    at: float


class Effects(Store):
    def record(self, external_id: str, results: dict[str, str], token: str | None = None, *,
               write: str | None = None) -> None:
        """Record Keap effects (ids) and clear their intent markers, in one script, while `token` holds the order's
        lease (None: no check). Without it nothing is recorded and LeaseLost is raised; OrphanWrite when these
        are the answer to the write `write` and were kept in the orphans. A Keap order id and contact id are
        indexed for the console's search on the way (`Finds.by_keap_id`)."""
        args = [token or "", external_id, write or ""] + [part for pair in results.items() for part in pair]
        verdict = int(self._lua.run("record", keys=[self.order_key(external_id),
                                                    self.lease_key(f"order:{external_id}"), self.orphans_key,
                                                    self.keap_ids_key, self.contact_key("")],
                                    args=args))
        if verdict == -1:
            raise OrphanWrite(f"order {external_id}: {write} answered after the lease was lost; kept as an orphan")
        if verdict == 0:
            raise LeaseLost(f"order {external_id}: lease lost before recording {', '.join(results)}")

    def mark_intent(self, external_id: str, what: str, token: str | None) -> None:
        """Note that a non-idempotent write is being sent (right before its bytes leave), durably as far as Redis
        allows (loss.py). Raises LeaseLost when the caller no longer holds the order's lease: another worker may be
        writing."""
        if not self._lua.run("mark_intent", keys=[self.order_key(external_id), self.lease_key(f"order:{external_id}")],
                             args=[what, token or ""]):
            raise LeaseLost(f"order {external_id}: lease lost before writing {what}")
        self.await_durable(external_id, what)

    def clear_intent(self, external_id: str, what: str, token: str | None) -> None:
        """The write is not in Keap (Keap refused it, or its request never left): nothing to reconcile. Drops only
        the caller's own intent (`token`), never another run's."""
        self._lua.run("clear_intent", keys=[self.order_key(external_id)], args=[what, token or ""])

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

    def orphans(self, limit: int = 100) -> list[Orphan]:
        """Writes Keap applied whose answer came after the worker lost the order's lease (newest first): the ledger
        does not point at them, so each is a Keap record an operator must look at (a duplicate, most likely)."""
        raw = self.redis.zrevrange(self.orphans_key, 0, limit - 1)
        return [Orphan(**json.loads(member)) for member in raw]

    def orphan_count(self) -> int:
        return int(self.redis.zcard(self.orphans_key))
