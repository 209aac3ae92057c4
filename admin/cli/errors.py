"""What the CLI's error boundary says for each failure an operator can fix, and with which exit code."""
from __future__ import annotations

import kombu.exceptions
import redis

from admin.cli import base
from producers.sources.base import FileRejected
from worker import scrub
from worker.context import NoCredential
from worker.keap import KeapAuthError, KeapError, KeapTransientError


def explain(exc: BaseException) -> tuple[int, list[str]]:
    """(exit code, the lines for stderr): what went wrong and what to do, without secrets or customer data."""
    if isinstance(exc, FileRejected):
        return base.EXIT_ERROR, [f"error: the file cannot be imported: {exc.message}", f"  what to do: {exc.hint}"]
    if isinstance(exc, (redis.RedisError, kombu.exceptions.OperationalError)):
        return base.EXIT_REDIS, [f"error: Redis does not answer at REDIS_URL ({_said(exc)})",
                                 "  what to do: start Redis or fix REDIS_URL (environment or .env), then run the "
                                 "command again"]
    if isinstance(exc, NoCredential):
        return base.EXIT_KEAP, [f"error: {exc}"]
    if isinstance(exc, KeapAuthError):
        return base.EXIT_KEAP, [f"error: Keap refused the credential (HTTP {exc.status or '?'})",
                                "  what to do: check KEAP_API_KEY (or run `keap-orders auth login` for OAuth) and "
                                "its permissions"]
    if isinstance(exc, KeapTransientError):
        return base.EXIT_KEAP, [f"error: Keap did not answer: {exc.message}",
                                "  what to do: check KEAP_BASE_URL and the network, then run the command again"]
    if isinstance(exc, KeapError):
        return base.EXIT_KEAP, [f"error: {exc.message}"]
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return base.EXIT_ERROR, [f"error: {where}{exc.strerror or _said(exc)}",
                                 "  what to do: check the path and its permissions"]
    return base.EXIT_ERROR, [f"error: unexpected {type(exc).__name__}: {_said(exc)}",
                             "  what to do: run again with KEAP_ORDERS_DEBUG=1 for the traceback, and report it"]


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = scrub.text(text)
    return text if len(text) <= 200 else text[:199] + "…"
