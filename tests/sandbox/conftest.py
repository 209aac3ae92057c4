"""Fixtures for the sandbox's own tests: a keyed HTTP client and a settable clock."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import SANDBOX_KEY


class Api:
    """requests against one sandbox, with the API key and `/crm/rest/v2` prefix filled in."""

    def __init__(self, sandbox, headers: dict | None = None):
        self.base = sandbox.base_url + "/rest/v2"
        self.session = requests.Session()
        self.session.headers.update(headers if headers is not None else {"X-Keap-API-Key": SANDBOX_KEY})

    def __getattr__(self, method):
        def call(path: str, **kwargs):
            kwargs.setdefault("timeout", 10)
            return self.session.request(method.upper(), self.base + path, **kwargs)
        return call


class Clock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(sandbox):
    return Api(sandbox)


def new_order(api, **overrides) -> dict:
    body = {"contact_id": "1", "order_time": "2024-05-01T10:00:00Z", "order_title": "Test order",
            "order_type": "ONLINE", "order_items": [{"product_id": "1", "quantity": 1}], **overrides}
    response = api.post("/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()
