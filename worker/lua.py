"""Redis Lua scripts kept as files: a package's `lua/<name>.lua`, read with importlib.resources."""
from __future__ import annotations

from importlib.resources import files


def load(package: str, name: str, *preambles: str) -> str:
    """The text of `package`'s lua/`name`.lua after its `preambles` (lua/<preamble>.lua of the same package, in
    order), ready for `redis.register_script`."""
    folder = files(package).joinpath("lua")
    return "\n".join(folder.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in (*preambles, name))
