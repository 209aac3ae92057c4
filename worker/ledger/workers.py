"""Which worker holds an order's message: workers beat in Redis while they live, and a queued order remembers the
worker that received its current message, so the keeper re-sends it within seconds of that worker's death."""
from __future__ import annotations

from dataclasses import dataclass

from worker.ledger.store import Store, text


@dataclass(frozen=True)
class Holder:
    worker: str
    alive: bool
    queued_since: float  # when the order was last queued (its `updated_at`)


class Workers(Store):
    def worker_key(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    def beat(self, worker: str, seconds: float) -> None:
        """The worker lives; it counts as gone `seconds` after its last beat."""
        self.redis.set(self.worker_key(worker), "1", px=int(seconds * 1000))

    def received(self, external_id: str, ticket: str, step: str, worker: str, look_in: float) -> bool:
        """`worker` received the order's current message; the keeper looks whether it lives in `look_in` seconds."""
        return bool(self._lua.run("received", keys=[self.order_key(external_id), self.watch_key],
                                  args=[external_id, ticket, step, worker, look_in]))

    def holder(self, external_id: str) -> Holder | None:
        """The worker holding a queued order's current message, if one received it."""
        status, ticket, step, holder, since = (text(v) for v in self.redis.hmget(
            self.order_key(external_id), "status", "ticket", "step", "holder", "updated_at"))
        held_ticket, _, rest = holder.partition(" ")
        held_step, _, worker = rest.partition(" ")
        if status != "queued" or not worker or (held_ticket, held_step) != (ticket, step):
            return None
        return Holder(worker, bool(self.redis.exists(self.worker_key(worker))), float(since or 0))
