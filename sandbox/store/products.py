"""Products and their subscription plans: seeded, created, read and listed (prices held in cents)."""
from __future__ import annotations

import copy

from sandbox.query import CMP, Field
from sandbox.store.core import ApiError, Core, cents, currency, iso


class Products(Core):
    """`/v2/products`; `self.plans` maps a plan id to (product id, plan) for orders and subscriptions."""

    def _load_products(self, seed: dict) -> None:
        self.products: dict[str, dict] = {}
        self.plans: dict[str, tuple[str, dict]] = {}  # plan id -> (product id, plan)
        for product in seed.get("products", []):
            self._add_product(self._seed_product(product))

    def _seed_product(self, product: dict) -> dict:
        record = {k: v for k, v in product.items() if k not in ("price", "subscription_plans")}
        record["price_cents"] = cents(product.get("price", "0"))
        record["plans"] = [{**{k: v for k, v in plan.items() if k != "plan_price"},
                            "price_cents": cents(plan.get("plan_price", "0"))}
                           for plan in product.get("subscription_plans", [])]
        record.setdefault("create_time", iso(self.now()))
        record.setdefault("update_time", record["create_time"])
        return record

    def _add_product(self, product: dict) -> None:
        self.products[product["id"]] = product
        for plan in product["plans"]:
            self.plans[plan["id"]] = (product["id"], plan)

    def product_view(self, product: dict, detail: bool = True) -> dict:
        view = {k: copy.deepcopy(v) for k, v in product.items() if k not in ("price_cents", "plans")}
        view["price"] = currency(product["price_cents"])
        view.setdefault("categories", [])
        view.setdefault("options", [])
        if not detail and isinstance(view.get("inventory"), dict):
            view["inventory"].pop("inventory_count", None)
        view["subscription_plans"] = [
            {**{k: v for k, v in plan.items() if k != "price_cents"}, "plan_price": currency(plan["price_cents"])}
            for plan in product["plans"]]
        return view

    def create_product(self, body: dict) -> dict:
        with self.lock:
            if body["price"] < 0:
                raise ApiError(400, "Invalid price: must be greater than or equal to 0")
            if not str(body["name"]).strip():
                raise ApiError(400, "Invalid name: must not be blank")
            now = iso(self.now())
            product = {**{k: v for k, v in body.items() if k != "price"}, "id": self._new_id("product"),
                       "price_cents": body["price"], "plans": [], "create_time": now, "update_time": now}
            product.setdefault("active", True)
            self._add_product(product)
            return self.product_view(product)

    def get_product(self, product_id: str) -> dict:
        with self.lock:
            return self.product_view(self._get(self.products, product_id, "Product"))

    def list_products(self, query: dict) -> dict:
        with self.lock:
            text = lambda key: Field("text", lambda p: p.get(key), wildcard=True)  # noqa: E731
            page, token = self._list(self.products.values(), query, {
                "name": text("name"), "sku": text("sku"), "description": text("description"),
                "short_description": text("short_description"),
                "product_id": Field("id", lambda p: p["id"], ops=CMP),
                "product_ids": Field("ids", lambda p: p["id"])},
                {"name": lambda p: p.get("name", "").lower(), "sku": lambda p: p.get("sku") or "",
                 "last_updated_time": lambda p: p.get("update_time")})
            return self._page("products", [self.product_view(p, detail=False) for p in page], token)
