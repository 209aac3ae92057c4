"""Keap orders: create, read, find (by custom field or standard filters), update, items, payments, custom fields."""
from __future__ import annotations

from typing import Any

from worker.keap.resource import Resource
from worker.keap.wire import build_filter

_ORDER = "/v2/orders/{order_id}"


class Orders(Resource):
    def create(self, body: dict) -> dict:
        return self._client.request("POST", "/v2/orders", json=body)

    def get(self, order_id: str) -> dict:
        return self._client.request("GET", _ORDER, path_params={"order_id": order_id})

    def list(self, filter: str | None = None, page_size: int = 1000, page_token: str | None = None,
             order_by: str | None = None) -> tuple[list, str | None]:
        """One page of orders; `filter` is Keap's filter string (see client.build_filter)."""
        return self._client.list_page("/v2/orders", "orders", filter=filter, page_size=page_size,
                                      page_token=page_token, order_by=order_by)

    def find_by_custom_field(self, field_name: str, value: Any) -> list[dict]:
        """Orders whose custom field `field_name` (e.g. "_ExternalOrderID", from get_model) equals value."""
        return self.find(**{field_name: value})

    def find(self, **filters: Any) -> list[dict]:
        """All orders matching every `field==value` given, e.g. find(contact_id="5")."""
        return list(self._client.iter_items("/v2/orders", "orders", filter=build_filter(filters)))

    def update(self, order_id: str, body: dict, update_mask: list[str]) -> dict:
        """PATCH only the properties named in update_mask (e.g. ["custom_fields"])."""
        if not update_mask:
            raise ValueError("update_mask must name the order properties to change, e.g. ['custom_fields']")
        return self._client.request("PATCH", _ORDER, path_params={"order_id": order_id},
                                    params={"update_mask": list(update_mask)}, json=body)

    def delete(self, order_id: str) -> None:
        """Delete an order; Keap refuses once it has a payment or other transaction."""
        self._client.request("DELETE", _ORDER, path_params={"order_id": order_id})

    def add_item(self, order_id: str, item: dict) -> dict:
        return self._client.request("POST", _ORDER + "/items", path_params={"order_id": order_id}, json=item)

    def add_payment(self, order_id: str, body: dict) -> dict:
        """Record (or charge) a payment; Keap refuses an amount above the order's balance."""
        return self._client.request("POST", _ORDER + "/payments", path_params={"order_id": order_id}, json=body)

    def list_payments(self, order_id: str) -> list[dict]:
        return list(self._client.iter_items(_ORDER + "/payments", "invoice_order_payments",
                                            path_params={"order_id": order_id}))

    def get_model(self) -> dict:
        """The order model: custom field definitions (id for writing, field_name for filtering)."""
        return self._client.request("GET", "/v2/orders/model")

    def create_custom_field(self, label: str, field_type: str = "TEXT") -> dict:
        return self._client.request("POST", "/v2/orders/model/customFields",
                                    json={"label": label, "field_type": field_type})
