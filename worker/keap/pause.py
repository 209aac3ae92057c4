"""The fleet's pause on a credential Keap refuses: a flag in Redis, read before every request, so one refused key
costs one error (and a handful of calls), not thousands of failed orders. `keap-orders auth resume` lifts it."""
from __future__ import annotations

import json
import logging
import time

import redis

log = logging.getLogger(__name__)


class CredentialPause:
    """The pause flag of one credential (`key`: its Redis key, named by a digest, never by the secret)."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.redis, self.key = client, key

    def __repr__(self) -> str:
        return f"CredentialPause({self.key!r})"

    def paused(self) -> dict | None:
        """{since, reason} while the credential is paused, else None."""
        raw = self.redis.get(self.key)
        return json.loads(raw) if raw else None

    def pause(self, reason: str) -> bool:
        """Raise the flag; True for the one caller that raised it (it logs the fleet's one error)."""
        return bool(self.redis.set(self.key, json.dumps({"since": time.time(), "reason": reason}), nx=True))

    def resume(self) -> bool:
        """Lift the flag (the credential works again); True if it was raised."""
        return bool(self.redis.delete(self.key))
