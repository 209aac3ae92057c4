"""Redis Lua scripts kept as files: a package's `lua/<name>.lua`, read with importlib.resources, after the preambles
its header names (`-- Preamble: now, move`, or `-- Preamble: none`)."""
from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

_HEADER = re.compile(r"^-- Preamble: (.+?)(?: \(prepended by the loader\))?$", re.MULTILINE)


@cache
def load(package: str, name: str) -> str:
    """The script as Redis runs it: the preambles its header names (lua/<preamble>.lua of the same package, in that
    order), then the script; ready for `redis.register_script`."""
    text = _read(package, name)
    header = _HEADER.search(text)
    if header is None:
        raise ValueError(f"{package} lua/{name}.lua: its header has no '-- Preamble:' line (say 'none' if it needs "
                         "none)")
    wanted = [] if header.group(1) == "none" else [part.strip() for part in header.group(1).split(",")]
    return "".join(_read(package, part) for part in wanted) + text


def names(package: str, preambles: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every script in the package's lua/ folder, but the preambles (they are not scripts of their own)."""
    found = (entry.name.removesuffix(".lua") for entry in files(package).joinpath("lua").iterdir()
             if entry.name.endswith(".lua"))
    return tuple(sorted(name for name in found if name not in preambles))


def _read(package: str, name: str) -> str:
    return files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
