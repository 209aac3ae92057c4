"""The moment a request is written: its send slot (the shared throttle) and its fence (the caller's last word) run
on the connection once it is connected, right before the request's bytes leave, so no wait lies between them and
the wire."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Protocol

import urllib3
from requests.adapters import HTTPAdapter


class Pace(Protocol):
    """One request's send slot: `take()` waits for a slot (or raises when it may not wait that long); `usable()`
    says whether that slot may still be sent in (it goes stale when this process stood still past it)."""

    def take(self) -> None: ...

    def usable(self) -> bool: ...


# Set by the session for each request, and by the caller around a write: `fence()` is called right before each of
# the write's requests leaves, after its slot; it raises to keep the request from being sent.
PACE: ContextVar[Pace | None] = ContextVar("keap_orders_pace", default=None)
FENCE: ContextVar[Callable[[], None] | None] = ContextVar("keap_orders_fence", default=None)


# Set by `fenced` for its block: the methods of the block's writes Keap answered 2xx (they took effect).
APPLIED: ContextVar[list[str] | None] = ContextVar("keap_orders_applied", default=None)


@contextmanager
def fenced(fence: Callable[[], None]) -> Iterator[list[str]]:
    """Within the block, `fence()` runs before each request leaves; yields the list of the block's writes that Keap
    answered 2xx, so a caller whose block failed later knows its write is in Keap anyway."""
    applied: list[str] = []
    token, box = FENCE.set(fence), APPLIED.set(applied)
    try:
        yield applied
    finally:
        FENCE.reset(token)
        APPLIED.reset(box)


def answered(method: str, status: int) -> None:
    """The client's note of each answer: a write answered 2xx inside a fenced block took effect."""
    applied = APPLIED.get()
    if applied is not None and method != "GET" and 200 <= status < 300:
        applied.append(method)


# Slots voided in a row before a request goes in its latest slot anyway: a process starved of CPU for good must
# still send (late, which moves the schedule) rather than take slot after slot.
_VOIDS = 3


def before_write() -> None:
    """The slot, then the fence. A slot that went stale meanwhile (the process was stopped, or the fence took long)
    is void: another is taken and the fence runs again, so what leaves is in a fresh slot, just fenced."""
    pace, fence = PACE.get(), FENCE.get()
    for voided in range(_VOIDS + 1):
        if pace is not None:
            pace.take()
        if fence is not None:
            fence()
        if pace is None or voided == _VOIDS or pace.usable():
            return


class _Hooked:
    def request(self, method, url, body=None, headers=None, **kwargs):
        if PACE.get() is not None or FENCE.get() is not None:
            if self.sock is None:
                self.connect()  # no pooled connection's wait nor a handshake between the hooks and the wire
            before_write()
        return super().request(method, url, body=body, headers=headers, **kwargs)


class _HTTPConnection(_Hooked, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Hooked, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def hook(adapter) -> None:
    """Make an adapter's connections run `before_write` (before any of its pools is made)."""
    if isinstance(adapter, HTTPAdapter):
        adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
