"""The sandbox's Keap account: contacts, products, orders, payments, custom fields, subscriptions and their rules.

Money is held in cents. DISCOUNT* lines: `price_per_unit` may be sent positive or negative; |price| × quantity is
subtracted from the total (which never goes below 0) and returned as the item's `discount`. Other lines refuse a
negative price. Request bodies reach this module already checked against the spec's schemas.
"""
from __future__ import annotations

import calendar
import copy
import datetime as dt
import json
import re
import threading
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from sandbox.query import CMP, EQ_CMP, Field, QueryError, apply_filter, apply_order, paginate, parse_filter

SEED_PATH = Path(__file__).with_name("seed.json")
DISCOUNT_TYPES = frozenset({"DISCOUNT", "DISCOUNT_FREE_TRIAL", "DISCOUNT_ORDER_TOTAL", "DISCOUNT_PRODUCT",
                            "DISCOUNT_PRODUCT_CATEGORY", "DISCOUNT_SHIPPING"})
PRODUCT_TYPES = frozenset({"PRODUCT", "SUBSCRIPTION"})
TEXT_FIELD_TYPES = frozenset({"TEXT", "TEXT_AREA", "NAME", "EMAIL", "PHONE_NUMBER", "WEBSITE",
                              "SOCIAL_SECURITY_NUMBER", "DROPDOWN", "RADIO", "STATE"})
NUMBER_FIELD_TYPES = frozenset({"WHOLE_NUMBER", "DECIMAL_NUMBER", "CURRENCY", "PERCENT", "YEAR", "MONTH",
                                "DAY_OF_WEEK", "USER"})
# Distinct id ranges for kinds without seeds, so a client that mixes two kinds of id up fails in tests.
ID_BASES = {"contact": 1, "product": 1, "plan": 1, "payment_method": 1, "order": 1, "invoice": 10001,
            "item": 20001, "payment": 30001, "invoice_payment": 40001, "subscription": 50001, "custom_field": 1}
CYCLES = {"DAILY": "DAY", "WEEKLY": "WEEK", "MONTHLY": "MONTH", "YEARLY": "YEAR"}


class ApiError(Exception):
    """A Keap error answer: HTTP status plus the message of the `Error` body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def cents(value, what: str = "amount") -> int:
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        raise ApiError(400, f"Invalid {what}: {value!r}") from None


def currency(amount_cents: int) -> dict:
    sign = "-" if amount_cents < 0 else ""
    return {"amount": amount_cents, "currency_code": "USD",
            "formatted_amount": f"{sign}${abs(amount_cents) // 100:,}.{abs(amount_cents) % 100:02d}"}


def dollars(amount_cents: int) -> float:
    return amount_cents / 100


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _not_blank(item: dict, names: tuple[str, ...], where: str) -> None:
    for name in names:
        if name in item and not str(item[name]).strip():
            raise ApiError(400, f"Invalid value for {where}{name}: must not be whitespace")


def _add_cycle(day: dt.date, cycle: str, frequency: int) -> dt.date:
    if cycle == "DAILY":
        return day + dt.timedelta(days=frequency)
    if cycle == "WEEKLY":
        return day + dt.timedelta(weeks=frequency)
    months = frequency * (12 if cycle == "YEARLY" else 1)
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def load_seed(data: str | Path | dict | None) -> dict:
    if isinstance(data, dict):
        return copy.deepcopy(data)
    with open(data or SEED_PATH, encoding="utf-8") as fh:
        return json.load(fh)


class Store:
    """All account state behind one lock; every public method is one API operation's business logic."""

    def __init__(self, seed: dict, clock: Callable[[], float]):
        self.seed = seed
        self.clock = clock
        self.lock = threading.RLock()
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        with self.lock:
            seed = copy.deepcopy(self.seed)
            self.payment_types: list[str] = seed.get("manual_payment_types") or []
            self.promo_codes: dict[str, int] = {p["code"].upper(): p["percent_off"] for p in seed.get("promo_codes", [])}
            self.contacts: dict[str, dict] = {}
            self.payment_methods: dict[str, dict] = {}
            for contact in seed.get("contacts", []):
                for method in contact.pop("payment_methods", []):
                    self.payment_methods[method["payment_method_id"]] = {**method, "contact_id": contact["id"]}
                contact.setdefault("create_time", _iso(self.now()))
                contact.setdefault("update_time", contact["create_time"])
                self.contacts[contact["id"]] = contact
            self.products: dict[str, dict] = {}
            self.plans: dict[str, tuple[str, dict]] = {}  # plan id -> (product id, plan)
            for product in seed.get("products", []):
                self._add_product(self._seed_product(product))
            # Custom field definitions per record type (ids are unique across both, as in Keap).
            self.fields: dict[str, dict[str, dict]] = {
                "ORDER": {f["id"]: f for f in seed.get("order_custom_fields", [])},
                "SUBSCRIPTION": {f["id"]: f for f in seed.get("subscription_custom_fields", [])},
            }
            self.orders: dict[str, dict] = {}
            self.subscriptions: dict[str, dict] = {}
            self._next = dict(ID_BASES)
            for kind, ids in (("contact", self.contacts), ("product", self.products), ("plan", self.plans),
                              ("payment_method", self.payment_methods),
                              ("custom_field", {**self.fields["ORDER"], **self.fields["SUBSCRIPTION"]})):
                self._next[kind] = max([int(i) + 1 for i in ids if str(i).isdigit()] + [ID_BASES[kind]])

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    def _new_id(self, kind: str) -> str:
        value = self._next[kind]
        self._next[kind] = value + 1
        return str(value)

    def _seed_product(self, product: dict) -> dict:
        record = {k: v for k, v in product.items() if k not in ("price", "subscription_plans")}
        record["price_cents"] = cents(product.get("price", "0"))
        record["plans"] = [{**{k: v for k, v in plan.items() if k != "plan_price"},
                            "price_cents": cents(plan.get("plan_price", "0"))}
                           for plan in product.get("subscription_plans", [])]
        record.setdefault("create_time", _iso(self.now()))
        record.setdefault("update_time", record["create_time"])
        return record

    def _add_product(self, product: dict) -> None:
        self.products[product["id"]] = product
        for plan in product["plans"]:
            self.plans[plan["id"]] = (product["id"], plan)

    # ------------------------------------------------------------------ lookups
    def _get(self, table: dict, record_id: str, what: str) -> dict:
        record = table.get(record_id)
        if record is None:
            raise ApiError(404, f"{what} {record_id} not found")
        return record

    def _contact_ref(self, contact_id, what: str = "contact_id") -> dict:
        contact = self.contacts.get(str(contact_id))
        if contact is None:
            raise ApiError(400, f"Invalid {what}: contact {contact_id} does not exist")
        return contact

    # ------------------------------------------------------------------ contacts
    _CONTACT_LISTS = ("addresses", "custom_fields", "email_addresses", "fax_numbers", "phone_numbers",
                      "social_accounts")

    def _check_contact(self, body: dict, creating: bool) -> None:
        if creating and not any(body.get(k) for k in ("email_addresses", "phone_numbers", "addresses")):
            raise ApiError(400, "Contact must contain at least one item in email_addresses, phone_numbers, "
                                "or addresses")
        for index, address in enumerate(body.get("addresses") or []):
            if (address.get("region") or address.get("region_code")) and not address.get("country_code"):
                raise ApiError(400, f"addresses[{index}].country_code is required if region is specified")

    def _write_contact(self, contact: dict, body: dict) -> None:
        # Lists are replaced whole, as Keap documents: items not sent are removed.
        for key, value in body.items():
            if key == "utm_parameters":
                contact[key] = [{"keapSourceId": value.get("keap_source_id"),
                                 **{f"utm{k[4:].capitalize()}": v for k, v in value.items() if k.startswith("utm_")}}]
            else:
                contact[key] = copy.deepcopy(value)
        contact["update_time"] = _iso(self.now())

    def upsert_contact(self, body: dict, duplicate_option: str | None) -> tuple[int, dict]:
        with self.lock:
            self._check_contact(body, creating=True)
            existing = self._find_duplicate(body, duplicate_option) if duplicate_option else None
            if existing is not None:
                self._write_contact(existing, body)
                return 200, self.contact_view(existing)
            contact = {"id": self._new_id("contact"), "create_time": _iso(self.now())}
            self._write_contact(contact, body)
            self.contacts[contact["id"]] = contact
            return 201, self.contact_view(contact)

    def _find_duplicate(self, body: dict, option: str) -> dict | None:
        emails = {e.get("email", "").lower() for e in body.get("email_addresses") or [] if e.get("email")}
        if not emails:
            return None
        for contact in self.contacts.values():
            theirs = {e.get("email", "").lower() for e in contact.get("email_addresses", [])}
            if not emails & theirs:
                continue
            if option in ("EmailAndName", "EmailAndNameAndCompany") and any(
                    (contact.get(k) or "").lower() != (body.get(k) or "").lower() for k in ("given_name", "family_name")):
                continue
            if option == "EmailAndNameAndCompany" and (contact.get("company") or {}).get("company_name") != \
                    (body.get("company") or {}).get("company_name"):
                continue
            return contact
        return None

    def update_contact(self, contact_id: str, body: dict, update_mask: list[str]) -> dict:
        with self.lock:
            contact = self._get(self.contacts, contact_id, "Contact")
            self._check_contact(body, creating=False)
            self._write_contact(contact, {k: v for k, v in body.items() if not update_mask or k in update_mask})
            return self.contact_view(contact)

    def get_contact(self, contact_id: str) -> dict:
        with self.lock:
            return self.contact_view(self._get(self.contacts, contact_id, "Contact"))

    @staticmethod
    def contact_view(contact: dict) -> dict:
        return copy.deepcopy(contact)

    def _contact_fields(self) -> dict[str, Field]:
        emails = lambda c: [e.get("email") for e in c.get("email_addresses", [])]  # noqa: E731
        return {"email": Field("text", emails, wildcard=True),
                "given_name": Field("text", lambda c: c.get("given_name"), wildcard=True),
                "family_name": Field("text", lambda c: c.get("family_name"), wildcard=True),
                "ids": Field("ids", lambda c: c["id"]),
                "contact_id": Field("id", lambda c: c["id"], ops=CMP)}

    def list_contacts(self, query: dict) -> dict:
        with self.lock:
            page, token = self._list(self.contacts.values(), query, self._contact_fields(), {
                "id": lambda c: int(c["id"]), "create_time": lambda c: c["create_time"],
                "update_time": lambda c: c["update_time"],
                "email": lambda c: ((c.get("email_addresses") or [{}])[0].get("email") or "").lower()})
            return self._page("contacts", [self.contact_view(c) for c in page], token)

    def list_payment_methods(self, contact_id: str, query: dict) -> dict:
        with self.lock:
            self._get(self.contacts, contact_id, "Contact")
            methods = [m for m in self.payment_methods.values() if m["contact_id"] == contact_id]
            page, token = self._list(methods, query, {
                "merchant_account_id": Field("text", lambda m: m.get("merchant_account_id"))},
                {"created_time": lambda m: m.get("created_time")}, id_key="payment_method_id")
            return self._page("records", copy.deepcopy(page), token)

    # ------------------------------------------------------------------ generic listing
    @staticmethod
    def _list(records, query: dict, fields: dict[str, Field], order_keys: dict, custom=None, id_key: str = "id"):
        try:
            clauses = parse_filter(query.get("filter"), fields, custom)
            chosen = apply_filter(sorted(records, key=lambda r: int(r[id_key])), clauses)
            chosen = apply_order(chosen, query.get("order_by"), order_keys)
            key = f"{query.get('filter') or ''}|{query.get('order_by') or ''}"
            return paginate(chosen, query.get("page_size"), query.get("page_token"), key)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None

    @staticmethod
    def _page(name: str, items: list, token: str | None) -> dict:
        body = {name: items}
        if token:
            body["next_page_token"] = token
        return body

    # ------------------------------------------------------------------ products
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
            now = _iso(self.now())
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

    # ------------------------------------------------------------------ custom-field models (orders, subscriptions)
    def custom_model(self, record_type: str) -> dict:
        with self.lock:
            return {"custom_fields": [copy.deepcopy(f) for f in self.fields[record_type].values()],
                    "optional_properties": []}

    def create_custom_field(self, record_type: str, body: dict) -> dict:
        with self.lock:
            fields = self.fields[record_type]
            label = body["label"].strip()
            if not label:
                raise ApiError(400, "Invalid label: must not be blank")
            if any(f["label"].lower() == label.lower() for f in fields.values()):
                raise ApiError(400, f"A custom field labelled {label!r} already exists on {record_type.title()}")
            # Keap's database column name: underscore + label without spaces/punctuation + running index.
            field_name = "_" + re.sub(r"[^A-Za-z0-9]", "", label) + str(len(fields))
            field = {"id": self._new_id("custom_field"), "label": label, "record_type": record_type,
                     "field_type": body["field_type"], "field_name": field_name,
                     "options": [{"id": str(i + 1), "label": o.get("label", "")}
                                 for i, o in enumerate(body.get("options") or [])]}
            if body.get("group_id"):
                field["group_id"] = body["group_id"]
            fields[field["id"]] = field
            return copy.deepcopy(field)

    def _custom_field(self, record_type: str, name: str) -> Field | None:
        """A custom field as a filter field, by its field_name (case-insensitive, as Keap)."""
        for meta in self.fields[record_type].values():
            if meta["field_name"].lower() == name.lower():
                kind = meta["field_type"]
                getter = lambda o, fid=meta["id"]: o["custom_fields"].get(fid)  # noqa: E731
                if kind in NUMBER_FIELD_TYPES:
                    return Field("number", getter, ops=CMP)
                if kind in ("DATE", "DATE_TIME"):
                    return Field("datetime", getter, ops=CMP)
                if kind == "YES_NO":
                    return Field("bool", getter)
                return Field("text", getter, wildcard=kind in TEXT_FIELD_TYPES)
        return None

    def _custom_values(self, record_type: str, values: list[dict]) -> dict[str, object]:
        out = {}
        for index, value in enumerate(values):
            meta = self.fields[record_type].get(str(value.get("id")))
            if meta is None:
                raise ApiError(400, f"Invalid custom_fields[{index}].id: no {record_type.lower()} custom field with "
                                    f"id {value.get('id')!r} (see GET /v2/{record_type.lower()}s/model)")
            content, kind = value.get("content"), meta["field_type"]
            if content is not None and kind in TEXT_FIELD_TYPES | {"TEXT_AREA"} and (
                    not isinstance(content, str) or len(content) > 65535):
                raise ApiError(400, f"Invalid custom_fields[{index}].content: {meta['label']} takes text "
                                    "of at most 65535 characters")
            if content is not None and kind in NUMBER_FIELD_TYPES and (
                    isinstance(content, bool) or not isinstance(content, (int, float))):
                raise ApiError(400, f"Invalid custom_fields[{index}].content: {meta['label']} takes a number")
            out[meta["id"]] = content
        return out

    # ------------------------------------------------------------------ orders
    def _build_item(self, body: dict, where: str) -> dict:
        item_type = body.get("item_type", "PRODUCT")
        _not_blank(body, ("name", "description", "notes", "subscription_plan_description"), where)
        if body["quantity"] < 1:
            raise ApiError(400, f"Invalid {where}quantity: must be greater than or equal to 1")
        product, plan = None, None
        if item_type in PRODUCT_TYPES:
            if not body.get("product_id"):
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

    _ORDER_SCALARS = ("order_title", "title", "order_time", "order_type", "notes", "terms", "lead_affiliate_id",
                      "sales_affiliate_id", "sent_time", "due_time", "invoice_number", "external_create_user",
                      "external_create_time", "external_update_time", "promo_codes", "shipping_address",
                      "payment_plan")

    def create_order(self, body: dict, source_type: str = "API") -> dict:
        with self.lock:
            self._contact_ref(body["contact_id"])
            _not_blank(body, ("order_title",), "")
            items = [self._build_item(item, f"order_items[{i}].") for i, item in enumerate(body.get("order_items")
                                                                                        or [])]
            custom = self._custom_values("ORDER", body.get("custom_fields") or [])
            items += self._promo_discounts(body.get("promo_codes") or [], items)
            now = _iso(self.now())
            order = {"id": self._new_id("order"), "invoice_id": self._new_id("invoice"), "contact_id":
                     str(body["contact_id"]), "items": items, "payments": [], "custom_fields": custom,
                     "creation_time": now, "modification_time": now, "source_type": source_type,
                     **{k: copy.deepcopy(body[k]) for k in self._ORDER_SCALARS if k in body}}
            self.orders[order["id"]] = order
            return self.order_view(order)

    def _promo_discounts(self, codes: list[str], items: list[dict]) -> list[dict]:
        """Keap applies a known promo code's discount to the order it is given with (assumption; see seed.json)."""
        products = sum(i["price_cents"] * i["quantity"] for i in items if i["item_type"] == "PRODUCT")
        return [{"id": self._new_id("item"), "item_type": "DISCOUNT_ORDER_TOTAL", "name": f"Promo {code}",
                 "quantity": 1, "price_cents": products * self.promo_codes[code.upper()] // 100, "cost_cents": 0,
                 "product_id": None, "plan_id": None}
                for code in codes if code.upper() in self.promo_codes]

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
            order["modification_time"] = _iso(self.now())
            return self.order_view(order)

    def delete_order(self, order_id: str) -> None:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            if order["payments"]:
                raise ApiError(400, f"Order {order_id} has transactions recorded and cannot be deleted")
            del self.orders[order_id]

    def add_item(self, order_id: str, body: dict) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            item = self._build_item(body, "")
            order["items"].append(item)
            order["modification_time"] = _iso(self.now())
            return self.item_view(item)

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
                "modification_time": lambda o: o["modification_time"]}, custom=lambda name: self._custom_field("ORDER", name))
            return self._page("orders", [self.order_view(o) for o in page], token)

    # ------------------------------------------------------------------ payments
    def create_payment(self, order_id: str, body: dict, declined: bool = False) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            amount = cents(body["payment_amount"], "payment_amount")
            method_id, method_type = body.get("payment_method_id"), body.get("payment_method_type")
            if not method_id and not method_type:
                raise ApiError(400, "At least one of payment_method_id or payment_method_type is required")
            if method_id:
                method = self.payment_methods.get(str(method_id))
                if method is None or method["contact_id"] != order["contact_id"]:
                    raise ApiError(400, f"Invalid payment_method_id: payment method {method_id} does not belong "
                                        f"to contact {order['contact_id']} of order {order_id}")
                if amount <= 0:
                    raise ApiError(400, "Invalid payment_amount: must be greater than 0 when charging a "
                                        "payment_method_id")
                status = "DECLINED" if declined else "APPROVED"
            else:
                if method_type not in self.payment_types:
                    raise ApiError(400, f"Invalid payment_method_type {method_type!r}: must exactly match a "
                                        f"configured Manual Payment Type ({', '.join(self.payment_types)})")
                if amount < 0:
                    raise ApiError(400, "Invalid payment_amount: must not be negative")
                status = "MANUAL_PAID"
            due = self._totals(order)[2]
            if amount > due:
                raise ApiError(400, f"Invalid payment_amount {dollars(amount):.2f}: exceeds the balance due "
                                    f"{dollars(due):.2f} of order {order_id}")
            now = _iso(self.now())
            payment = {"id": self._new_id("invoice_payment"), "payment_id": self._new_id("payment"),
                       "amount_cents": amount, "pay_status": "FAILED" if status == "DECLINED" else status, "pay_time": body.get("payment_time") or now,
                       "last_updated_time": now, "skip_commission": not body["apply_to_commissions"],
                       "note": body.get("notes"), "method_id": method_id, "method_type": method_type,
                       **{k: v for k, v in body.items() if k.startswith("external_")}}
            order["payments"].append(payment)
            order["modification_time"] = now
            result = {"id": payment["payment_id"], "invoice_id": order["invoice_id"],
                      "payment_amount": dollars(amount), "payment_status_message": status}
            if method_id:
                result["transaction_id"] = f"txn-{payment['payment_id']}"
            return result

    @staticmethod
    def payment_view(order: dict, payment: dict) -> dict:
        view = {"id": payment["id"], "amount": dollars(payment["amount_cents"]), "invoice_id": order["invoice_id"],
                "payment_id": payment["payment_id"], "pay_time": payment["pay_time"],
                "pay_status": payment["pay_status"], "last_updated_time": payment["last_updated_time"],
                "skip_commission": payment["skip_commission"]}
        if payment.get("note") is not None:
            view["note"] = payment["note"]
        return view

    def list_payments(self, order_id: str, query: dict) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            views = [self.payment_view(order, p) for p in order["payments"]]
            page, token = self._list(views, query, {
                "invoice_id": Field("id", lambda p: p["invoice_id"]),
                "payment_id": Field("id", lambda p: p["payment_id"]),
                "amount": Field("number", lambda p: p["amount"], ops=CMP),
                "pay_status": Field("text", lambda p: p["pay_status"]),
                "skip_commission": Field("bool", lambda p: p["skip_commission"])},
                {k: (lambda p, k=k: p.get(k)) for k in ("invoice_id", "payment_id", "amount", "pay_time",
                                                         "pay_status", "skip_commission", "last_updated_time")})
            return self._page("invoice_order_payments", page, token)

    # ------------------------------------------------------------------ subscriptions
    def create_subscription(self, body: dict, amount_in_cents: bool = False) -> dict:
        with self.lock:
            contact = self._contact_ref(body["contact_id"])
            found = self.plans.get(str(body["subscription_plan_id"]))
            if found is None:
                raise ApiError(400, f"Invalid subscription_plan_id: plan {body['subscription_plan_id']} does not "
                                    "exist")
            product_id, plan = found
            today = self.now().date()
            start = dt.date.fromisoformat(body["start_date"]) if body.get("start_date") else today
            if start < today:
                raise ApiError(400, f"Invalid start_date {start.isoformat()}: must not be in the past "
                                    f"(today is {today.isoformat()} UTC)")
            for name in ("quantity", "max_charge_attempts", "days_between_retries"):
                if name in body and body[name] < 1:
                    raise ApiError(400, f"Invalid {name}: must be 1 or greater")
            if body.get("billing_amount", 0) < 0:
                raise ApiError(400, "Invalid billing_amount: must be 0 or greater")
            active = body.get("active", True)
            if active and not body.get("allow_duplicate") and any(
                    s["active"] and s["contact_id"] == contact["id"] and s["subscription_plan_id"] == plan["id"]
                    for s in self.subscriptions.values()):
                # Keap's duplicate check; answered like its other validation failures (400).
                raise ApiError(400, f"Duplicate subscription: contact {contact['id']} already has an active "
                                    f"subscription to plan {plan['id']} (set allow_duplicate to create another)")
            auto_charge = body.get("auto_charge", True)
            method_id = body.get("payment_method_id")
            if method_id and self.payment_methods.get(str(method_id), {}).get("contact_id") != contact["id"]:
                raise ApiError(400, f"Invalid payment_method_id: {method_id} does not belong to contact "
                                    f"{contact['id']}")
            if not method_id and auto_charge:
                cards = [m for m in self.payment_methods.values() if m["contact_id"] == contact["id"]]
                method_id = cards[-1]["payment_method_id"] if cards else None
            subscription = {
                "id": self._new_id("subscription"), "contact_id": contact["id"], "product_id": product_id,
                "subscription_plan_id": plan["id"], "quantity": body.get("quantity", 1), "active": active,
                "billing_amount": (body["billing_amount"] / (100 if amount_in_cents else 1) if "billing_amount" in body
                                   else dollars(plan["price_cents"])),
                "auto_charge": auto_charge, "billing_cycle": CYCLES[plan["billing_cycle"]],
                "billing_frequency": plan.get("billing_frequency", 1), "start_date": start.isoformat(),
                "next_bill_date": start.isoformat(), "allow_tax": body.get("allow_tax", False),
                "modification_time": _iso(self.now()),
                "custom_fields": self._custom_values("SUBSCRIPTION", body.get("custom_fields") or []),
                **{k: copy.deepcopy(body[k]) for k in ("max_charge_attempts", "days_between_retries",
                                                       "lead_affiliate_id", "sale_affiliate_id", "promo_code",
                                                       "shipping_option_id", "reason_stopped", "shipping_address")
                   if k in body}}
            if method_id:
                subscription["payment_method_id"] = str(method_id)
            self.subscriptions[subscription["id"]] = subscription
            return self.subscription_view(subscription)

    @staticmethod
    def subscription_view(subscription: dict) -> dict:
        view = copy.deepcopy(subscription)
        view["custom_fields"] = [{"id": k, "content": v} for k, v in subscription["custom_fields"].items()]
        return view

    def get_subscription(self, subscription_id: str) -> dict:
        with self.lock:
            return self.subscription_view(self._get(self.subscriptions, subscription_id, "Subscription"))

    def list_subscriptions(self, query: dict) -> dict:
        with self.lock:
            page, token = self._list(self.subscriptions.values(), query, {
                "contact_id": Field("id", lambda s: s["contact_id"]),
                "subscription_plan_id": Field("id", lambda s: s["subscription_plan_id"]),
                "status": Field("text", lambda s: "Active" if s["active"] else "Inactive"),
                "id": Field("id", lambda s: s["id"], ops=EQ_CMP), "ids": Field("ids", lambda s: s["id"]),
                "subscription_plan_ids": Field("ids", lambda s: s["subscription_plan_id"]),
                "billing_amount": Field("number", lambda s: s["billing_amount"], ops=EQ_CMP)},
                {"id": lambda s: int(s["id"]), "contact_id": lambda s: int(s["contact_id"]),
                 "subscription_plan_id": lambda s: int(s["subscription_plan_id"]),
                 "modification_time": lambda s: s["modification_time"]},
                custom=lambda name: self._custom_field("SUBSCRIPTION", name))
            return self._page("subscriptions", [self.subscription_view(s) for s in page], token)

    def invoice_subscription(self, subscription_id: str) -> dict:
        """Bill every due cycle (one order each) and return the most recent order."""
        with self.lock:
            sub = self._get(self.subscriptions, subscription_id, "Subscription")
            if not sub["active"]:
                raise ApiError(400, f"Subscription {subscription_id} is not active")
            product_id, plan = self.plans[sub["subscription_plan_id"]]
            today, latest = self.now().date(), None
            while dt.date.fromisoformat(sub["next_bill_date"]) <= today:
                bill_date = dt.date.fromisoformat(sub["next_bill_date"])
                latest = self.create_order({
                    "contact_id": sub["contact_id"], "order_type": "OFFLINE",
                    "order_title": f"{self.products[product_id]['name']} subscription",
                    "order_time": f"{bill_date.isoformat()}T00:00:00Z",
                    "order_items": [{"item_type": "SUBSCRIPTION", "product_id": product_id, "quantity": sub["quantity"],
                                     "subscription_plan_id": plan["id"], "price_per_unit": sub["billing_amount"]}],
                }, source_type="INVOICE")
                self.orders[latest["id"]]["items"][0]["subscription_id"] = sub["id"]
                sub["last_bill_date"] = bill_date.isoformat()
                sub["next_bill_date"] = _add_cycle(bill_date, plan["billing_cycle"],
                                                   plan.get("billing_frequency", 1)).isoformat()
                sub["modification_time"] = _iso(self.now())
            if latest is None:
                raise ApiError(400, f"Subscription {subscription_id} has no billing cycle due (next bill date "
                                    f"{sub['next_bill_date']})")
            return self.get_order(latest["id"])
