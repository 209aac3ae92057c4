"""The sandbox's own `/__sandbox__/` endpoints (not Keap's): stats, reset, revoke, and reading or setting faults."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.server import Sandbox

ADMIN_PREFIX = "/__sandbox__/"


def admin_answer(sandbox: Sandbox, method: str, name: str, raw: bytes) -> tuple[int, dict]:
    """(status, JSON body) for `method ADMIN_PREFIX+name`; a bad faults body is a 400, an unknown name a 404."""
    try:
        if (method, name) == ("GET", "stats"):
            return 200, sandbox.stats()
        if (method, name) == ("POST", "reset"):
            sandbox.reset()
            return 200, {"reset": True}
        if (method, name) == ("POST", "revoke"):
            return 200, {"revoked_tokens": sandbox.oauth.revoke()}
        if (method, name) == ("GET", "faults"):
            return 200, sandbox.faults.as_dict()
        if (method, name) == ("POST", "faults"):
            sandbox.set_faults(**(json.loads(raw) if raw.strip() else {}))
            return 200, sandbox.faults.as_dict()
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    return 404, {"error": f"no admin endpoint {method} {ADMIN_PREFIX}{name}; "
                          "try GET stats, POST reset, POST revoke, GET/POST faults"}
