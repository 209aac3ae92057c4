"""The throttle's hook into requests/urllib3: a session whose connections take the call's slot right before the
request is written, and report every answer's x-keap-* headers back."""
from __future__ import annotations

import logging
import time
from contextvars import ContextVar

import redis
import requests
import urllib3
from requests.adapters import HTTPAdapter

from worker.keap.quota import RateLimits
from worker.throttle.pacing import Permit, Throttle

log = logging.getLogger(__name__)


class _Send:
    """One request on its way: the throttle it needs a slot from and, once taken, the slot and how late it left."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle
        self.permit: Permit | None = None
        self.late_ms = 0.0
        self.taken = False

    def take(self) -> None:
        if not self.taken:
            self.taken = True
            self.permit = self.throttle.acquire()
            if self.permit is not None:
                self.late_ms = (time.time() - self.permit.due) * 1000


_SENDING: ContextVar[_Send | None] = ContextVar("keap_orders_sending", default=None)


class _TakesSlot:
    """A urllib3 connection that takes the call's slot once it is connected, right before writing the request:
    neither waiting for a pooled connection nor a TCP or TLS handshake lies between the slot and the wire."""

    def request(self, method, url, body=None, headers=None, **kwargs):
        sending = _SENDING.get()
        if sending is not None and not sending.taken:
            if self.sock is None:
                self.connect()
            sending.take()
        return super().request(method, url, body=body, headers=headers, **kwargs)


class _HTTPConnection(_TakesSlot, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_TakesSlot, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class ThrottledSession(requests.Session):
    """A requests.Session that sends each request in its own slot of the shared limit and reports every
    answer's x-keap-* headers back to it.

    The slot is taken by the connection right before the request is written (see _TakesSlot), on every adapter
    mounted (KeapClient mounts its own, with connect retries)."""

    def __init__(self, throttle: Throttle):
        self.throttle = throttle
        super().__init__()

    def mount(self, prefix: str, adapter) -> None:
        if isinstance(adapter, HTTPAdapter):
            adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        super().mount(prefix, adapter)

    def send(self, request, **kwargs):
        sending = _Send(self.throttle)
        token = _SENDING.set(sending)
        try:
            response = super().send(request, **kwargs)
        finally:
            _SENDING.reset(token)
        if sending.permit is not None:
            try:
                self.throttle.observe(RateLimits.from_headers(response.headers), response.status_code,
                                      sending.permit.slot_ms, late_ms=sending.late_ms)
            except redis.RedisError as exc:
                # The call itself went through; a lost correction only makes the next ones less exact.
                log.warning("could not record Keap's rate-limit headers: %s", exc)
        return response
