"""Fixtures for the Keap client over real HTTP: a client on the sandbox whose every request is spec-checked."""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests

from tests.conftest import CLIENT_COVERED, SANDBOX_KEY, conformance_spec
from worker.keap import ApiKeyAuth, KeapClient


@dataclass(frozen=True)
class SentRequest:
    method: str
    path: str  # from /rest on, e.g. /rest/v2/orders/12
    query: dict[str, list[str]]
    body: bytes | None
    exempt: bool


class SpecRecorder:
    """Records every request a session sends (a response hook sees the PreparedRequest) and checks it against
    the official OpenAPI spec: path + method exist, query parameters are declared and valid, body matches."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.sent: list[SentRequest] = []
        self._exempt = False

    def hook(self, response: requests.Response, *args, **kwargs) -> None:
        request = response.request
        parts = urlsplit(request.url)
        _, rest, path = parts.path.partition("/rest/")
        if not rest:
            return  # /token and the sandbox admin surface are not part of the REST v2 spec
        body = request.body.encode() if isinstance(request.body, str) else request.body
        self.sent.append(SentRequest(request.method, rest + path, parse_qs(parts.query, keep_blank_values=True),
                                     body, self._exempt))

    @contextmanager
    def exempt(self):
        """For requests a test makes invalid on purpose (e.g. to get Keap's 400)."""
        self._exempt = True
        try:
            yield
        finally:
            self._exempt = False

    def violations(self) -> list[str]:
        found = []
        for sent in self.sent:
            if not sent.exempt:
                found += [f"{sent.method} {sent.path}: {problem}" for problem in self._check(sent)]
        return found

    def _check(self, sent: SentRequest) -> list[str]:
        matched = self.spec.match(sent.path)
        if matched is None:
            return ["no such path in Keap's spec"]
        template, _ = matched
        operation = self.spec.operation(sent.method, template)
        if operation is None:
            return [f"Keap's spec has no {sent.method} for {template}"]
        CLIENT_COVERED.add((sent.method, template))
        problems = []
        declared = {p["name"]: p.get("schema", {}) for p in operation.get("parameters", []) if p["in"] == "query"}
        for name, values in sent.query.items():
            if name not in declared:
                problems.append(f"query parameter {name!r} is not declared")
                continue
            schema = declared[name]
            value = values if schema.get("type") == "array" else values[0]
            if schema.get("type") == "integer":
                value = int(value)
            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as error:
                problems.append(f"query parameter {name}: {error.message}")
        if sent.body:
            problems += [str(v) for v in self.spec.request_violations(sent.method, template, json.loads(sent.body))]
        elif self.spec.request_body_required(sent.method, template):
            problems.append("the spec requires a request body")
        return problems


@pytest.fixture(scope="session")
def keap_spec():
    return conformance_spec()


@pytest.fixture
def recorder(keap_spec):
    """Every REST request of the test is checked against the spec when the test ends."""
    recorder = SpecRecorder(keap_spec)
    yield recorder
    problems = recorder.violations()
    assert not problems, "requests that do not conform to Keap's OpenAPI spec:\n" + "\n".join(problems)


@pytest.fixture
def session(recorder):
    with requests.Session() as session:
        session.hooks["response"].append(recorder.hook)
        yield session


@pytest.fixture
def start_sandbox():
    """Starts extra sandboxes with other settings (limits, faults) than the shared `sandbox` fixture."""
    from sandbox.server import Sandbox

    started = []

    def start(**settings):
        started.append(Sandbox(port=0, **settings).start())
        return started[-1]

    yield start
    for sb in started:
        sb.stop()


@pytest.fixture
def client(sandbox, session):
    return KeapClient(sandbox.base_url, ApiKeyAuth(SANDBOX_KEY), session=session)
