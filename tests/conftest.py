"""Shared fixtures: a real Redis (own key prefix, cleaned after), the sandbox over real HTTP."""
from __future__ import annotations

import os
import uuid

import pytest
import redis as redis_lib

from sandbox.auth import API_KEY as SANDBOX_KEY  # noqa: F401 (test modules import it from here)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_client():
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis_lib.ConnectionError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"tests need a Redis at {REDIS_URL} ({exc}); start redis-server or set TEST_REDIS_URL")
    return client


@pytest.fixture
def key_prefix(redis_client):
    """A fresh Redis key prefix for one test; every key under it is deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}:*", count=1000):
        redis_client.delete(key)


# --- the sandbox, with every recorded exchange checked against Keap's official OpenAPI spec -------------------
from pathlib import Path  # noqa: E402

OFFICIAL_SPEC = Path(__file__).resolve().parents[1].parent / "shared/keap-openapi/keap-rest-v2.openapi.yml"
SPEC_COVERED: set[tuple[str, str]] = set()  # operations whose sandbox answers were checked
CLIENT_COVERED: set[tuple[str, str]] = set()  # operations whose client requests were checked


def spec_problems(spec, exchanges) -> list[str]:
    """Spec violations in recorded exchanges; requests are checked only when the sandbox accepted them (2xx)."""
    problems = []
    for ex in exchanges:
        template, status = ex.get("template"), ex.get("status")
        if not template or not template.startswith("/rest/") or status in (None, 429) or ex.get("injected"):
            continue
        if spec.operation(ex["method"], template) is None:
            continue
        SPEC_COVERED.add((ex["method"], template))
        found = []
        if 200 <= status < 300 and ex.get("request_json") is not None:
            found += [f"request: {v.message}" for v in spec.request_violations(ex["method"], template,
                                                                                ex["request_json"])]
        if not spec.declares_status(ex["method"], template, status):
            found.append(f"status {status} is not declared by the spec")
        else:
            found += [f"response: {v.message}" for v in spec.response_violations(ex["method"], template, status,
                                                                                 ex.get("response_json"))]
        problems += [f"{ex['method']} {template} -> {status}: {text}" for text in found]
    return problems


def conformance_spec():
    """The official spec file when it is beside the repo (as in CI); else the sandbox's JSON copy of it."""
    from sandbox.spec import load_spec

    return load_spec(OFFICIAL_SPEC if OFFICIAL_SPEC.is_file() else None)


@pytest.fixture
def sandbox():
    """A started Sandbox(record=True, limits="off"); at teardown every exchange must conform to the spec."""
    from sandbox.server import Sandbox

    with Sandbox(record=True, limits="off") as sb:
        yield sb
    problems = spec_problems(conformance_spec(), sb.exchanges)
    if problems:
        pytest.fail("sandbox exchanges violate Keap's OpenAPI spec:\n  " + "\n  ".join(problems[:20]))


def pytest_terminal_summary(terminalreporter):
    if SPEC_COVERED or CLIENT_COVERED:
        source = OFFICIAL_SPEC if OFFICIAL_SPEC.is_file() else "sandbox/openapi copy (official file absent)"
        terminalreporter.write_line(
            f"spec conformance against {source}: sandbox answers of {len(SPEC_COVERED)} operations, "
            f"client requests of {len(CLIENT_COVERED)} operations"
        )
