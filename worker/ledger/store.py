"""What every part of the ledger shares: the Redis client, the key names under the prefix, the clock (Redis server
time) and the Lua scripts."""
from __future__ import annotations

import hashlib
from typing import Any

import redis

from worker.ledger.scripts import Scripts


class Store:
    def __init__(self, client: redis.Redis, prefix: str = "keap-orders"):
        self.redis = client
        self.prefix = prefix
        self._lua = Scripts(client)

    # keys -----------------------------------------------------------------------------------------------
    def order_key(self, external_id: str) -> str:
        """The order's hash."""
        return f"{self.prefix}:order:{external_id}"

    def status_key(self, status: str) -> str:
        """The set of the orders with this status (its SCARD is their number); `status_key("")` is the prefix of
        these sets that the scripts move orders between."""
        return f"{self.prefix}:status:{status}"

    @property
    def watch_key(self) -> str:
        """Active orders by the time the keeper must look at them."""
        return f"{self.prefix}:watch"

    @property
    def done_key(self) -> str:
        """Done orders by the time they finished (retention reads what is due)."""
        return f"{self.prefix}:done"

    @property
    def orphans_key(self) -> str:
        """Answers to writes that came after the worker lost the order's lease, by the time they came."""
        return f"{self.prefix}:orphans"

    @property
    def lanes_key(self) -> str:
        """Orders per lane and status: a hash of `<lane>:<status>` counts, moved with the status sets (lua/move.lua
        derives it from the status-set prefix)."""
        return self.status_key("by-lane")

    def email_key(self, digest: str) -> str:
        """The orders of one customer email, by its digest (`email_digest`): never the email itself."""
        return f"{self.prefix}:email:{digest}"

    @property
    def keap_ids_key(self) -> str:
        """Keap order ids to the order that wrote them: a hash of `order:<id>` → external id."""
        return f"{self.prefix}:keapid"

    def contact_key(self, contact_id: str) -> str:
        """The orders written for one Keap contact (a set of external ids)."""
        return f"{self.prefix}:contact:{contact_id}"

    def lease_key(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    def held_key(self, group: str) -> str:
        """Parked orders waiting for one event (e.g. "reauth")."""
        return f"{self.prefix}:held:{group}"

    def cache_key(self, name: str) -> str:
        return f"{self.prefix}:cache:{name}"

    def now(self) -> float:
        """Redis server time: the clock every host and every Lua script here shares."""
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6


def email_digest(email: Any) -> str:
    """What the ledger keeps of a customer's email to find their orders: sha256 of the trimmed, lower-cased address
    (32 hex digits); '' for no email. The email itself is never a key, a log line or a report."""
    if not isinstance(email, str) or not email.strip():
        return ""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def text(value: Any) -> str:
    """A script's or a command's answer as text ('' for nil)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
