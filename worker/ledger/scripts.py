"""The ledger's Lua scripts (lua/*.lua, loaded by worker/lua.py with the preambles each header names), registered on
one Redis client."""
from __future__ import annotations

from typing import Any

import redis

from worker import lua

PREAMBLES = ("now", "move", "identity")


def names() -> tuple[str, ...]:
    return lua.names("worker.ledger", PREAMBLES)


def source(name: str) -> str:
    return lua.load("worker.ledger", name)


class Scripts:
    """Every script registered on one Redis client (run by EVALSHA, loaded again if Redis lost it)."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in names()}

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=keys, args=args)
