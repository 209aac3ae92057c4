"""The throttle's hook into requests: a session whose connections take the call's slot right before the request
is written (keap.sending), and report every answer's x-keap-* headers back."""
from __future__ import annotations

import logging
import time

import redis
import requests

from worker.keap import sending
from worker.keap.quota import RateLimits
from worker.throttle.pacing import Permit, Throttle

log = logging.getLogger(__name__)


class _Slot:
    """One request's send slot in the shared limit (a keap.sending Pace): the permit it was sent in, and how late."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle
        self.permit: Permit | None = None
        self.late_ms = 0.0

    def take(self) -> None:
        self.permit = self.throttle.acquire()

    def usable(self) -> bool:
        if self.permit is None:
            return True
        self.late_ms = (time.time() - self.permit.due) * 1000
        return not self.throttle.stale(self.late_ms)


class ThrottledSession(requests.Session):
    """A requests.Session that sends each request in its own slot of the shared limit and reports every
    answer's x-keap-* headers back to it.

    The slot is taken by the connection right before the request is written (keap.sending), on every adapter
    mounted (KeapClient mounts its own, with connect retries). A slot gone stale by then is void: another is taken."""

    def __init__(self, throttle: Throttle):
        self.throttle = throttle
        super().__init__()

    def mount(self, prefix: str, adapter) -> None:
        sending.hook(adapter)
        super().mount(prefix, adapter)

    def send(self, request, **kwargs):
        slot = _Slot(self.throttle)
        token = sending.PACE.set(slot)
        try:
            response = super().send(request, **kwargs)
        finally:
            sending.PACE.reset(token)
        if slot.permit is not None:
            try:
                self.throttle.observe(RateLimits.from_headers(response.headers), response.status_code,
                                      slot.permit.slot_ms, late_ms=slot.late_ms)
            except redis.RedisError as exc:
                # The call itself went through; a lost correction only makes the next ones less exact.
                log.warning("could not record Keap's rate-limit headers: %s", exc)
        return response
