"""Caches shared by all workers (contacts, products, custom fields): one Redis hash per cache."""
from __future__ import annotations

from worker.ledger.store import Store, text


class Caches(Store):
    def cache_get(self, name: str, key: str) -> str | None:
        return text(self.redis.hget(self.cache_key(name), key)) or None

    def cache_set(self, name: str, key: str, value: str) -> None:
        self.redis.hset(self.cache_key(name), key, value)

    def cache_delete(self, name: str, key: str) -> None:
        self.redis.hdel(self.cache_key(name), key)
