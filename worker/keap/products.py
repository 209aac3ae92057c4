"""Keap products: find by SKU, read (with subscription plans), create, list."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

from worker.keap.resource import Resource
from worker.keap.wire import build_filter, cents

log = logging.getLogger(__name__)


class Products(Resource):
    def find_by_sku(self, sku: str) -> dict | None:
        """The product with exactly this SKU, or None. Keap's `sku==` may match case-insensitively: exact wins."""
        found = list(self._client.iter_items("/v2/products", "products", filter=build_filter({"sku": sku})))
        exact = [p for p in found if p.get("sku") == sku]
        matches = exact or [p for p in found if str(p.get("sku", "")).casefold() == sku.casefold()]
        if len(matches) > 1:
            log.warning("%d Keap products share SKU %s; using product %s", len(matches), sku, matches[0].get("id"))
        return matches[0] if matches else None

    def get(self, product_id: str) -> dict:
        return self._client.request("GET", "/v2/products/{product_id}", path_params={"product_id": product_id})

    def create(self, body: dict) -> dict:
        """Create a product. `price` is in cents on Keap's side; a Decimal price is converted (19.90 → 1990)."""
        if isinstance(body.get("price"), Decimal):
            body = {**body, "price": cents(body["price"])}
        return self._client.request("POST", "/v2/products", json=body)

    def list(self, page_size: int = 1000, page_token: str | None = None) -> tuple[list, str | None]:
        return self._client.list_page("/v2/products", "products", page_size=page_size, page_token=page_token)

    def iter_all(self) -> Iterator[dict]:
        return self._client.iter_items("/v2/products", "products")
