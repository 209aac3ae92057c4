"""The ledger's Lua scripts, one a file in lua/, read with importlib.resources; the preambles a script's header
names (`-- Preamble: now, move`) are put in front of it, in that order."""
from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import redis

PREAMBLES = ("now", "move")
_HEADER = re.compile(r"^-- Preamble: (.+?)(?: \(prepended by the loader\))?$", re.MULTILINE)


@cache
def names() -> tuple[str, ...]:
    """Every script in lua/ (the preambles are not scripts of their own)."""
    found = (entry.name.removesuffix(".lua") for entry in _folder().iterdir() if entry.name.endswith(".lua"))
    return tuple(sorted(name for name in found if name not in PREAMBLES))


@cache
def source(name: str) -> str:
    """The script as Redis runs it: the preambles its header names, then the script."""
    text = _read(name)
    header = _HEADER.search(text)
    if header is None:
        raise ValueError(f"lua/{name}.lua: its header has no '-- Preamble:' line (say 'none' if it needs none)")
    wanted = [] if header.group(1) == "none" else [part.strip() for part in header.group(1).split(",")]
    unknown = set(wanted) - set(PREAMBLES)
    if unknown:
        raise ValueError(f"lua/{name}.lua: unknown preamble(s) {sorted(unknown)}; known: {PREAMBLES}")
    return "".join(_read(part) for part in wanted) + text


class Scripts:
    """Every script registered on one Redis client (run by EVALSHA, loaded again if Redis lost it)."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in names()}

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=keys, args=args)


def _folder():
    return resources.files("worker.ledger").joinpath("lua")


def _read(name: str) -> str:
    return _folder().joinpath(f"{name}.lua").read_text(encoding="utf-8")
