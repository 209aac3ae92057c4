"""Faults (commit-then-timeout, 5xx, 429 bursts, latency), the admin surface, spec checks and CLI startup."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox.limits import THROTTLED_BODY
from tests.conftest import SANDBOX_KEY, conformance_spec, spec_problems

ORDER = {"contact_id": "1", "order_time": "2024-05-01T10:00:00Z", "order_title": "dup?", "order_type": "ONLINE",
         "order_items": [{"product_id": "1", "quantity": 1}]}


def test_commit_then_timeout_applies_the_write(sandbox, api):
    sandbox.set_faults(commit_then_timeout_rate=1.0, stall_seconds=5, routes=["POST /rest/v2/orders"])
    with pytest.raises(requests.Timeout):
        api.post("/orders", json=ORDER, timeout=0.5)
    listed = api.get("/orders").json()["orders"]
    assert [o["title"] for o in listed] == ["dup?"]  # the write happened although the client saw no answer
    sandbox.set_faults(commit_then_timeout_rate=1.0)  # stall 0: the connection is dropped at once
    with pytest.raises(requests.ConnectionError):
        api.post("/orders", json=ORDER)
    assert len(api.get("/orders").json()["orders"]) == 2
    assert sandbox.stats()["requests"]["POST /rest/v2/orders dropped"] == 2


def test_error_rate_burst_429_latency_and_routes(sandbox, api):
    sandbox.set_faults(error_rate=1.0, routes=["GET /rest/v2/orders/model"])
    failing = api.get("/orders/model")
    assert failing.status_code in (500, 502, 503) and failing.json()["code"] == failing.status_code
    assert api.get("/products").status_code == 200  # other routes untouched
    sandbox.set_faults(burst_429=2)
    assert [api.get("/orders/model").status_code for _ in range(3)] == [429, 429, 200]
    sandbox.set_faults(latency_ms=[150, 200])
    started = time.monotonic()
    api.get("/orders/model")
    assert time.monotonic() - started >= 0.15
    assert sandbox.stats()["throttled_429"] == 2


def test_admin_endpoints(sandbox, api):
    admin = sandbox.url + "/__sandbox__/"
    set_faults = requests.post(admin + "faults", json={"burst_429": 1}, timeout=5)
    assert set_faults.status_code == 200 and set_faults.json()["burst_429_remaining"] == 1
    throttled = api.get("/orders")
    assert throttled.status_code == 429 and throttled.json() == THROTTLED_BODY
    assert requests.post(admin + "faults", json={"bogus": 1}, timeout=5).status_code == 400
    api.post("/orders", json=ORDER)
    stats = requests.get(admin + "stats", timeout=5).json()
    assert stats["requests"] == {"GET /rest/v2/orders 429": 1, "POST /rest/v2/orders 201": 1}
    assert stats["total"] == 2 and stats["throttled_429"] == 1 and stats["max_per_minute"] == {"api-key": 2}
    assert requests.post(admin + "faults", json={}, timeout=5).json()["burst_429"] == 0
    assert requests.get(admin + "faults", timeout=5).json()["error_rate"] == 0
    assert requests.post(admin + "reset", timeout=5).status_code == 200
    assert api.get("/orders").json()["orders"] == []
    assert sandbox.stats()["total"] == 1


def test_spec_validation_catches_malformed_exchanges():
    spec = conformance_spec()
    good = {"method": "GET", "template": "/rest/v2/orders/{order_id}", "status": 200,
            "request_json": None, "response_json": {"id": "1", "total": {"amount": 100}}}
    assert spec_problems(spec, [good]) == []
    bad = {**good, "response_json": {"id": 1, "total": {"amount": "1.00"}, "colour": "red"}}
    problems = spec_problems(spec, [bad])
    assert any("GET /rest/v2/orders/{order_id} -> 200" in p and "Unrecognized property: colour" in p
               for p in problems), problems
    assert any("total.amount" in p for p in problems)
    accepted_bad_request = {"method": "POST", "template": "/rest/v2/orders", "status": 201, "response_json": {},
                            "request_json": {"price": 1}}
    assert any("request: Unrecognized property: price" in p for p in spec_problems(spec, [accepted_bad_request]))
    assert spec_problems(spec, [{**good, "status": 418}]) == ["GET /rest/v2/orders/{order_id} -> 418: status 418 "
                                                              "is not declared by the spec"]


def test_python_m_sandbox_starts_quickly():
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", "0", "--limits", "sak"],
                               cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        first_line = process.stdout.readline()
        assert first_line.startswith("Keap sandbox base URL: http://127.0.0.1:"), first_line
        base = first_line.split()[4]
        response = requests.get(base + "/rest/v2/orders/model", headers={"X-Keap-API-Key": SANDBOX_KEY},
                                timeout=5)
        elapsed = time.monotonic() - started
        print(f"python -m sandbox answered after {elapsed:.2f}s")
        assert response.status_code == 200 and response.headers["x-keap-product-throttle-limit"] == "240"
        assert elapsed < 10
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
