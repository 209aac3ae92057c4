"""What the API and the webhooks share: a body read within a size limit, JSON within a depth limit, bearer tokens and
signatures compared in constant time, the answer when Redis is away (503 with Retry-After), and the few threads that
register orders (`ingest`)."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
from decimal import Decimal
from typing import Any, Callable

import anyio
import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from pydantic import SecretStr

RETRY_AFTER = 5  # seconds a caller (a store, a service) should wait before it sends again when Redis is away
# Redis (the ledger) or the broker on it does not answer: the order could not be registered or sent.
UNAVAILABLE = (redis.RedisError, OperationalError)


async def ingest(app: FastAPI, function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking producer call (validate, register, send) off the event loop on one of HTTP_INGEST_THREADS
    threads; other calls wait their turn in order. The default thread pool (40 threads) made p99 latency 50 times
    worse: its threads queue on the GIL and on the Redis connection pool's lock."""
    limiter = getattr(app.state, "ingest_limiter", None)
    if limiter is None:  # made on first use: it belongs to the running event loop
        limiter = app.state.ingest_limiter = anyio.CapacityLimiter(app.state.settings.http_ingest_threads)
    return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs), limiter=limiter)


def unavailable() -> JSONResponse:
    return JSONResponse({"error": "the order store (Redis) does not answer; send it again later"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER)})


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes (whatever Content-Length claims)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is larger than {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, max_depth: int) -> Any:
    """JSON (numbers as Decimal, like the file readers) or 400 saying what is wrong; never deeper than `max_depth`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8 text") from None
    if _depth(text) > max_depth:
        raise HTTPException(400, f"the JSON is nested deeper than {max_depth} levels; an order is a flat object")
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not JSON ({str(exc)[:80]})") from None


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings, found by one regular-expression pass (C speed, no recursion),
    so a hostile body never reaches the parser's recursion."""
    deepest = depth = 0
    for token in _TOKENS.finditer(text):
        c = token.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def secrets_of(value: SecretStr | None) -> list[bytes]:
    """A comma-separated secret setting as its values (several: a rotation)."""
    return [part.strip().encode() for part in (value.get_secret_value() if value else "").split(",") if part.strip()]


def any_equal(given: bytes, candidates: list[bytes]) -> bool:
    """Constant time in the value: every candidate is compared, each with compare_digest."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(given, candidate)
    return found


def bearer(request: Request, *scopes: SecretStr | None) -> None:
    """401 unless the Authorization header carries one of the tokens of `scopes` (never logged, never echoed)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    tokens = [t for scope in scopes for t in secrets_of(scope)]
    if scheme.lower() != "bearer" or not token or not any_equal(token.strip().encode(), tokens):
        raise HTTPException(401, "a valid 'Authorization: Bearer <token>' is needed", {"WWW-Authenticate": "Bearer"})


def signed(raw: bytes, signature: str | None, secrets: list[bytes]) -> bool:
    """A store's signature: base64 HMAC-SHA256 of the raw body with one of the secrets."""
    if not signature or not secrets:
        return False
    given = signature.strip().encode()
    return any_equal(given, [base64.b64encode(hmac.new(s, raw, hashlib.sha256).digest()) for s in secrets])
