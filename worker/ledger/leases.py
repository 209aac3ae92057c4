"""Leases: a Redis key with a token and an expiry, on an order (a step run) or a shared resource (a contact, the
custom-field setup), renewed while its holder works and gone within seconds of its death."""
from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import redis

from worker.ledger.store import Store


def clock() -> float:
    """A clock that keeps running while the process is stopped or the machine sleeps (Linux's CLOCK_BOOTTIME; the
    monotonic clock elsewhere): what a lease's deadline is measured on."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


class LeaseLost(Exception):
    """This worker's lease ran out (it was paused or cut off longer than the lease) and another may hold it now:
    it must not write to Keap for this order any more."""


class Leases(Store):
    def renew_lease(self, name: str, token: str, seconds: float) -> bool:
        """Extend the lease to `seconds` from now, if `token` still holds it."""
        return bool(self._lua.run("lease_renew", keys=[self.lease_key(name)], args=[token, int(seconds * 1000)]))

    def release_lease(self, name: str, token: str) -> None:
        """Give the lease up, if `token` still holds it."""
        self._lua.run("lease_release", keys=[self.lease_key(name)], args=[token])

    def lease_held(self, name: str) -> bool:
        """Whether anyone holds the lease now (e.g. "order:<id>": a worker is on the order)."""
        return bool(self.redis.exists(self.lease_key(name)))

    @contextmanager
    def lease(self, name: str, seconds: float, wait: float) -> Iterator[Lease]:
        """Hold a named lease (e.g. "contact:<hash>") while the block runs, renewed in the background; waits up
        to `wait` seconds for it, then raises TimeoutError."""
        lease = Lease(self, name, seconds)
        if not lease.acquire(wait):
            raise TimeoutError(f"lease {name} is held by another worker")
        try:
            yield lease
        finally:
            lease.release()


class Lease:
    """A Redis key with a token and an expiry, renewed every third of its lifetime by a background thread while
    the holder works: gone within `seconds` of its holder's death, never before it while the holder lives.

    `holds()` is the holder's own view, without a round trip: the lease surely lives until `seconds` minus a fifth
    after the last claim or renewal was *sent* (on `clock()`; Redis set the expiry after that). A holder that stood
    still past it (a stopped process, a paused VM, a laptop asleep) must not act on its own judgement any more.
    """

    MARGIN = 0.2  # of `seconds`: covers the way from the last check to Keap, and clocks that run a little apart

    def __init__(self, ledger: Leases, name: str, seconds: float, token: str | None = None,
                 since: float | None = None):
        """`since`: the `clock()` time the claim that took this lease was sent (for a lease taken by a script)."""
        self.ledger, self.name, self.seconds = ledger, name, seconds
        self.token = token or uuid.uuid4().hex
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._until = self._deadline(since) if since is not None else 0.0

    def _deadline(self, sent: float) -> float:
        return sent + self.seconds * (1 - self.MARGIN)

    def holds(self) -> bool:
        """Whether the holder may still act under the lease: not lost, and surely not expired by now. Past its own
        deadline (a renewal thread starved of CPU, or a stop) only Redis can say so: one renewal, now."""
        if self.lost.is_set():
            return False
        if clock() < self._until:
            return True
        sent = clock()
        try:
            renewed = self.ledger.renew_lease(self.name, self.token, self.seconds)
        except redis.RedisError:
            return False
        if not renewed:
            self.lost.set()
            return False
        self._until = self._deadline(sent)
        return True

    def acquire(self, wait: float = 0.0) -> bool:
        key, deadline = self.ledger.lease_key(self.name), self.ledger.now() + wait
        while True:
            sent = clock()
            if self.ledger.redis.set(key, self.token, nx=True, px=int(self.seconds * 1000)):
                break
            if self.ledger.now() >= deadline:
                return False
            threading.Event().wait(0.05)
        self._until = self._deadline(sent)
        self.keep()
        return True

    def keep(self) -> None:
        """Start renewing (for a lease taken by a script, such as a step's claim)."""
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            sent = clock()
            try:
                if not self.ledger.renew_lease(self.name, self.token, self.seconds):
                    self.lost.set()
                    return
                self._until = self._deadline(sent)
            except redis.RedisError:
                continue  # the next renewal may get through; the lease lasts three periods

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.seconds)
        try:
            self.ledger.release_lease(self.name, self.token)
        except redis.RedisError:
            pass  # it expires by itself
