"""Orders and their items: totals, promo discounts, views, updates and filtered lists.

DISCOUNT* lines: `price_per_unit` may be sent positive or negative; |price| × quantity is subtracted from the total
(which never goes below 0) and returned as the item's `discount`. Other lines refuse a negative price.
"""
from __future__ import annotations

import copy

from sandbox.query import EQ_CMP, Field
from sandbox.store.contacts import Contacts
from sandbox.store.core import ApiError, cents, currency, iso, not_blank
from sandbox.store.custom_fields import CustomFields
from sandbox.store.products import Products

DISCOUNT_TYPES = frozenset({"DISCOUNT", "DISCOUNT_FREE_TRIAL", "DISCOUNT_ORDER_TOTAL", "DISCOUNT_PRODUCT",
                            "DISCOUNT_PRODUCT_CATEGORY", "DISCOUNT_SHIPPING"})
PRODUCT_TYPES = frozenset({"PRODUCT", "SUBSCRIPTION"})


class Orders(Contacts, Products, CustomFields):
    """`/v2/orders` and `/v2/orders/{id}/items`; an order refers to a contact, products, plans and custom fields."""

    _ORDER_SCALARS = ("order_title", "title", "order_time", "order_type", "notes", "terms", "lead_affiliate_id",
                      "sales_affiliate_id", "sent_time", "due_time", "invoice_number", "external_create_user",
                      "external_create_time", "external_update_time", "promo_codes", "shipping_address",
                      "payment_plan")

    def _load_orders(self, seed: dict) -> None:
        self.promo_codes: dict[str, int] = {p["code"].upper(): p["percent_off"] for p in seed.get("promo_codes", [])}
        self.orders: dict[str, dict] = {}

    # ------------------------------------------------------------------ items
    def _build_item(self, body: dict, where: str) -> dict:
        item_type = body.get("item_type", "PRODUCT")
        not_blank(body, ("name", "description", "notes", "subscription_plan_description"), where)
        if body["quantity"] < 1:
            raise ApiError(400, f"Invalid {where}quantity: must be greater than or equal to 1")
        product, plan = None, None
        if not body.get("product_id") and (item_type in PRODUCT_TYPES or self.reading("no-productless-lines")):
            raise ApiError(400, f"Missing {where}product_id: required for item_type {item_type}")
        if body.get("product_id"):
            product = self.products.get(str(body["product_id"]))
            if product is None:
                raise ApiError(400, f"Invalid {where}product_id: product {body['product_id']} does not exist")
        if item_type == "SUBSCRIPTION":
            found = self.plans.get(str(body.get("subscription_plan_id")))
            if found is None or found[0] != product["id"]:
                raise ApiError(400, f"Invalid {where}subscription_plan_id: must be a plan of product "
                                    f"{product['id']}")
            plan = found[1]
        if "price_per_unit" in body:
            price = cents(body["price_per_unit"], f"{where}price_per_unit")
        elif plan is not None:
            price = plan["price_cents"]
        else:
            price = product["price_cents"] if product else 0
        if price < 0 and item_type not in DISCOUNT_TYPES:
            raise ApiError(400, f"Invalid {where}price_per_unit: must not be negative for item_type {item_type}")
        name = body.get("name") or (product["name"] if product else item_type.replace("_", " ").title())
        return {"id": self._new_id("item"), "item_type": item_type, "name": name, "quantity": body["quantity"],
                "price_cents": abs(price) if item_type in DISCOUNT_TYPES else price,
                "cost_cents": cents(body.get("cost_per_unit", 0), f"{where}cost_per_unit"),
                "product_id": product["id"] if product else None, "plan_id": plan["id"] if plan else None,
                **{k: body[k] for k in ("description", "notes", "subscription_plan_description") if k in body}}

    def _promo_discounts(self, codes: list[str], items: list[dict]) -> list[dict]:
        """Keap applies a known promo code's discount to the order it is given with (assumption; see seed.json),
        unless the order has explicit DISCOUNT lines (then the codes are ignored; the promo-applied reading adds
        them on top)."""
        if any(i["item_type"] in DISCOUNT_TYPES for i in items) and not self.reading("promo-applied"):
            return []
        products = sum(i["price_cents"] * i["quantity"] for i in items if i["item_type"] == "PRODUCT")
        return [{"id": self._new_id("item"), "item_type": "DISCOUNT_ORDER_TOTAL", "name": f"Promo {code}",
                 "quantity": 1, "price_cents": products * self.promo_codes[code.upper()] // 100, "cost_cents": 0,
                 "product_id": None, "plan_id": None}
                for code in codes if code.upper() in self.promo_codes]

    @staticmethod
    def _line_total(item: dict) -> int:
        amount = item["price_cents"] * item["quantity"]
        return -amount if item["item_type"] in DISCOUNT_TYPES else amount

    def _totals(self, order: dict) -> tuple[int, int, int]:
        total = max(sum(self._line_total(i) for i in order["items"]), 0)
        paid = sum(p["amount_cents"] for p in order["payments"] if p["pay_status"] != "FAILED")
        return total, paid, total - paid

    def item_view(self, item: dict) -> dict:
        view = {"id": item["id"], "name": item["name"], "quantity": item["quantity"], "item_type": item["item_type"],
                "price_per_unit": currency(item["price_cents"]), "cost_per_unit": currency(item["cost_cents"])}
        view.update({k: item[k] for k in ("description", "notes", "subscription_id") if item.get(k)})
        product = self.products.get(item["product_id"] or "")
        if product:
            view["product"] = {k: product[k] for k in ("id", "name", "sku", "description", "shippable", "taxable")
                               if product.get(k) is not None}
        if item["item_type"] in DISCOUNT_TYPES:
            view["discount"] = currency(item["price_cents"] * item["quantity"])
        if item["plan_id"]:
            product_id, plan = self.plans[item["plan_id"]]
            view["subscription_plan"] = {
                "id": plan["id"], "frequency": plan.get("billing_frequency", 1), "active": plan.get("active", True),
                "subscription_plan_name": item.get("subscription_plan_description")
                or f"{self.products[product_id]['name']} {plan['billing_cycle'].title()}",
                "cycle_type": plan["billing_cycle"], "total_cycles": plan.get("number_of_cycles", 0),
                "plan_price": currency(plan["price_cents"]), "display_order_index": plan.get("order_index", 0)}
        return view

    def add_item(self, order_id: str, body: dict) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            item = self._build_item(body, "")
            order["items"].append(item)
            order["modification_time"] = iso(self.now())
            return self.item_view(item)

    # ------------------------------------------------------------------ orders
    def order_view(self, order: dict) -> dict:
        total, paid, due = self._totals(order)
        contact = self.contacts.get(order["contact_id"], {})
        emails = contact.get("email_addresses") or [{}]
        view = {
            "id": order["id"], "title": order["order_title"], "status": "PAID" if order["payments"] and due <= 0
            else "DRAFT", "total": currency(total), "total_paid": currency(paid), "total_due": currency(due),
            "refund_total": currency(0), "contact": {k: v for k, v in {
                "id": order["contact_id"], "email": emails[0].get("email"), "given_name": contact.get("given_name"),
                "family_name": contact.get("family_name")}.items() if v is not None},
            "order_type": order["order_type"], "source_type": order["source_type"],
            "creation_time": order["creation_time"], "modification_time": order["modification_time"],
            "order_time": order["order_time"], "allow_payment": True, "allow_paypal": False, "synced": False,
            "invoice_id": order["invoice_id"], "order_items": [self.item_view(i) for i in order["items"]],
            "custom_fields": [{"id": k, "content": v} for k, v in order["custom_fields"].items()],
        }
        for key in ("notes", "terms", "lead_affiliate_id", "sales_affiliate_id", "invoice_number", "sent_time",
                    "due_time", "external_create_user", "external_create_time", "external_update_time"):
            if order.get(key) is not None:
                view[key] = order[key]
        if order.get("promo_codes"):
            view["promo_code"] = ",".join(order["promo_codes"])
        address = order.get("shipping_address")
        if address:
            view["shipping_information"] = {
                "id": order["id"], "invoice_to_company": bool(address.get("is_invoice_to_company")),
                "address": {k: address[k] for k in ("line1", "line2", "locality", "region", "zip_code", "zip_four",
                                                    "country_code") if k in address},
                **{out: address[key] for key, out in (("company", "company"), ("first_name", "given_name"),
                                                      ("last_name", "family_name"), ("phone", "phone_number"))
                   if key in address}}
        return view

    def create_order(self, body: dict, source_type: str = "API") -> dict:
        with self.lock:
            self._contact_ref(body["contact_id"])
            not_blank(body, ("order_title",), "")
            items = [self._build_item(item, f"order_items[{i}].") for i, item in enumerate(body.get("order_items")
                                                                                        or [])]
            custom = self._custom_values("ORDER", body.get("custom_fields") or [])
            items += self._promo_discounts(body.get("promo_codes") or [], items)
            now = iso(self.now())
            order = {"id": self._new_id("order"), "invoice_id": self._new_id("invoice"), "contact_id":
                     str(body["contact_id"]), "items": items, "payments": [], "custom_fields": custom,
                     "creation_time": now, "modification_time": now, "source_type": source_type,
                     **{k: copy.deepcopy(body[k]) for k in self._ORDER_SCALARS if k in body}}
            self.orders[order["id"]] = order
            return self.order_view(order)

    def get_order(self, order_id: str) -> dict:
        with self.lock:
            return self.order_view(self._get(self.orders, order_id, "Order"))

    def update_order(self, order_id: str, body: dict, update_mask: list[str]) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            fields = {k: v for k, v in body.items() if not update_mask or k in update_mask}
            if "contact_id" in fields:
                self._contact_ref(fields["contact_id"])
                order["contact_id"] = str(fields["contact_id"])
            if "custom_fields" in fields:
                # Values sent are written; fields not mentioned keep their value.
                order["custom_fields"].update(self._custom_values("ORDER", fields["custom_fields"] or []))
            for key in self._ORDER_SCALARS:
                if key in fields:
                    order[key] = copy.deepcopy(fields[key])
            order["modification_time"] = iso(self.now())
            return self.order_view(order)

    def delete_order(self, order_id: str) -> None:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            if order["payments"]:
                raise ApiError(400, f"Order {order_id} has transactions recorded and cannot be deleted")
            del self.orders[order_id]

    def _order_fields(self) -> dict[str, Field]:
        shipping = lambda key: Field("text", lambda o: (o.get("shipping_address") or {}).get(key))  # noqa: E731
        return {
            "id": Field("id", lambda o: o["id"], ops=EQ_CMP), "ids": Field("ids", lambda o: o["id"]),
            "product_id": Field("id", lambda o: [i["product_id"] for i in o["items"] if i["product_id"]]),
            "contact_id": Field("id", lambda o: o["contact_id"]),
            "invoice_id": Field("id", lambda o: o["invoice_id"]),
            "paid": Field("bool", lambda o: bool(o["payments"]) and self._totals(o)[2] <= 0),
            "created_since_time": Field("since", lambda o: o["creation_time"]),
            "created_until_time": Field("until", lambda o: o["creation_time"]),
            "modified_since_time": Field("since", lambda o: o["modification_time"]),
            "modified_until_time": Field("until", lambda o: o["modification_time"]),
            "title": Field("text", lambda o: o.get("order_title"), wildcard=True),
            "order_type": Field("text", lambda o: o.get("order_type")),
            "shipping_locality": shipping("locality"), "shipping_region_code": shipping("region"),
            "shipping_postal_code": shipping("zip_code"), "shipping_country_code": shipping("country_code"),
        }

    def list_orders(self, query: dict) -> dict:
        with self.lock:
            page, token = self._list(self.orders.values(), query, self._order_fields(), {
                "id": lambda o: int(o["id"]), "order_time": lambda o: o.get("order_time") or "",
                "modification_time": lambda o: o["modification_time"]},
                custom=None if self.reading("no-custom-field-filter")
                else lambda name: self._custom_field("ORDER", name))
            return self._page("orders", [self.order_view(o) for o in page], token)
