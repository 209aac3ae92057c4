"""Keap subscriptions: create (Keap refuses duplicates unless allow_duplicate), read, find, invoice."""
from __future__ import annotations

from typing import Any

from worker.keap.resource import Resource
from worker.keap.wire import build_filter

_SUBSCRIPTION = "/v2/subscriptions/{subscription_id}"


class Subscriptions(Resource):
    def create(self, body: dict) -> dict:
        return self._client.request("POST", "/v2/subscriptions", json=body)

    def get(self, subscription_id: str) -> dict:
        return self._client.request("GET", _SUBSCRIPTION, path_params={"subscription_id": subscription_id})

    def find(self, **filters: Any) -> list[dict]:
        """All subscriptions matching every `field==value` given, e.g. find(contact_id="5")."""
        return list(self._client.iter_items("/v2/subscriptions", "subscriptions", filter=build_filter(filters)))

    def invoice(self, subscription_id: str) -> dict | None:
        """Invoice every due cycle; returns the most recent invoiced order, None when Keap returns nothing."""
        return self._client.request("POST", _SUBSCRIPTION + ":invoice",
                                    path_params={"subscription_id": subscription_id}) or None
