"""Keap subscriptions: create (Keap refuses duplicates unless allow_duplicate), read, find, invoice, custom fields."""
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

    def get_model(self) -> dict:
        """The subscription model: custom field definitions (id for writing, field_name for filtering)."""
        return self._client.request("GET", "/v2/subscriptions/model")

    def create_custom_field(self, label: str, field_type: str = "TEXT") -> dict:
        return self._client.request("POST", "/v2/subscriptions/model/customFields",
                                    json={"label": label, "field_type": field_type})
