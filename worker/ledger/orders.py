"""The order state machine: register, update and cancel (producers), claim and the end of a step run (the runner),
resend (the keeper). Every status change is one Lua script using Redis server time; `cancelled` is final."""
from __future__ import annotations

import json
import uuid
from typing import Any, Callable, Iterable

import redis

from worker.ledger.state import OrderState
from worker.ledger.store import Store, email_digest, text


class Orders(Store):
    # producers ------------------------------------------------------------------------------------------
    def register(self, external_id: str, message: dict[str, Any], lane: str, *, first_step: str,
                 from_step: str | None = None, force: bool = False, start_within: float = 300.0,
                 ) -> tuple[bool, str | None, str, str]:
        """Store the message, mark the order queued, return (registered, previous status, step to send, ticket).

        Refused when the order is queued, running, waiting or done (unless `force`) and always when cancelled.
        A failed order resumes at its failed step. Earlier results are kept, so a re-registered order resumes
        where it stopped instead of writing to Keap again. The ticket goes with the messages sent for it. The order
        joins the index of its customer's email (a digest of it: `Finds.by_email`).
        """
        ticket = uuid.uuid4().hex[:12]
        self.check_redis()  # a loss found before the order is registered again makes its writes look in Keap first
        ok, old, step = self._lua.run(
            "register", keys=[self.order_key(external_id), self.status_key(""), self.watch_key, self.email_key("")],
            args=[external_id, json.dumps(message, separators=(",", ":")), lane, "1" if force else "0",
                  from_step or "", first_step, ticket, start_within,
                  email_digest((message.get("customer") or {}).get("email"))],
        )
        return bool(ok), (text(old) or None), text(step), ticket

    def update(self, external_id: str, change: Callable[[OrderState], dict[str, Any]]) -> OrderState:
        """Change an order atomically: `change(state)` returns the fields to set (it may raise to refuse); it is
        called again if another producer changed the order meanwhile. Cancelled orders are refused."""
        key = self.order_key(external_id)
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
        """A step sent on its own for a done or failed order: the keeper sees it through if its worker dies (each
        of several sent at once)."""
        self._lua.run("watch_single", keys=[self.order_key(external_id), self.watch_key],
                      args=[external_id, step, start_within])

    def cancel(self, external_id: str) -> str | None:
        """Cancel for good; returns the status it had (None if unknown). The step running now finishes its call,
        but nothing runs after it."""
        return text(self._lua.run("cancel", keys=[self.order_key(external_id), self.status_key(""), self.watch_key],
                                  args=[external_id])) or None

    # a step run -----------------------------------------------------------------------------------------
    def claim(self, external_id: str, step: str, token: str, lease_seconds: float, ticket: str | None,
              step_names: Iterable[str]) -> tuple[str, str, str]:
        """Start a run of `step`: (verdict, status, lane). verdict: ok (the lease is ours), busy (another run holds
        the order), stale (a message of an earlier sending: drop it), cancelled, missing."""
        verdict, status, lane = self._lua.run(
            "claim", keys=[self.order_key(external_id), self.status_key(""), self.watch_key,
                           self.lease_key(f"order:{external_id}")],
            args=[external_id, step, token, int(lease_seconds * 1000), ticket or "", ",".join(step_names)],
        )
        return text(verdict), text(status), text(lane)

    # The end of a run: each verb releases the run's lease (`token`) and moves the order in one script
    # (lua/end_run.lua). A chain verb (advance, retry, park, finish) returns False when the order moved on without
    # this run (another ticket) or was cancelled.
    def advance(self, external_id: str, *, token: str, ticket: str, step: str, start_within: float,
                look_in: float | None = None) -> bool:
        """The run's step is done: the order is queued at the next `step`, which must start within `start_within`
        seconds (or the keeper sends it again); its re-drive count starts over. With `look_in`, the worker that held
        this step's message holds the next one until another receives it, and the keeper looks whether it lives
        after `look_in` seconds (it dies before sending: the order is sent again then, not after `start_within`)."""
        return self._end_run(external_id, token, ticket, "advance", step, start_within,
                             *([] if look_in is None else [look_in]))

    def retry(self, external_id: str, *, token: str, ticket: str, step: str, start_within: float) -> bool:
        """The run's step comes back through the broker (a short wait): the order is queued at `step` again."""
        return self._end_run(external_id, token, ticket, "retry", step, start_within)

    def park(self, external_id: str, *, token: str, ticket: str, step: str, until: float, reason: str) -> bool:
        """The order waits outside the broker until `until` (server time) for `reason`; the keeper releases it."""
        return self._end_run(external_id, token, ticket, "park", step, until, reason)

    def finish(self, external_id: str, *, token: str, ticket: str) -> bool:
        """The last step is done: the order is done (and in the done index, for retention)."""
        return self._end_run(external_id, token, ticket, "finish")

    def fail(self, external_id: str, *, step: str, error: str, kind: str, token: str = "",
             ticket: str | None = None) -> bool:
        """The order failed at `step` with an operator's message: it waits for `keap-orders retry`. Also from
        outside a step run (the keeper, a producer that could not send): no token, no ticket. A step sent on its
        own that fails on an order failed already leaves the first failure (and its step) in place."""
        return self._end_run(external_id, token, ticket, "fail", error, step, kind)

    def finish_single(self, external_id: str, *, token: str, step: str) -> bool:
        """A step sent on its own is done: the order's status does not change; its pending mark goes."""
        return self._end_run(external_id, token, None, "finish_single", step)

    def release(self, external_id: str, *, token: str) -> bool:
        """End a run without changing the order (a step sent on its own that comes back through the broker)."""
        return self._end_run(external_id, token, None, "release")

    def _end_run(self, external_id: str, token: str, ticket: str | None, verb: str, *args: Any) -> bool:
        return bool(self._lua.run(
            "end_run", keys=[self.order_key(external_id), self.status_key(""), self.watch_key,
                             self.lease_key(f"order:{external_id}"), self.done_key],
            args=[external_id, token, ticket or "", verb, *args]))

    # the keeper -----------------------------------------------------------------------------------------
    def resend(self, external_id: str, status: str, start_within: float, *, redrive: bool) -> str | None:
        """Mark a due order sent again (new ticket: older messages of it are dropped); None if it moved."""
        ticket = uuid.uuid4().hex[:12]
        sent = self._lua.run("resend", keys=[self.order_key(external_id), self.status_key(""), self.watch_key],
                             args=[external_id, status, ticket, start_within, "1" if redrive else "0"])
        return text(sent) or None
