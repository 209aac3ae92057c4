"""The order message (pydantic v2): what producers send and what the worker re-reads, with `parse_order()` and
the JSON Schema services validate against."""
from __future__ import annotations

import hashlib
import json
from datetime import date, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from worker.contract import regions
from worker.contract.errors import OrderInvalid, field_error
from worker.contract.fields import (
    AwareDatetime,
    BillingCycle,
    CountryCode,
    CustomValue,
    Email,
    ExternalId,
    IsoDate,
    ItemType,
    KeapId,
    Money,
    OptText,
    PositiveMoney,
    Quantity,
    RegionCode,
    ShortText,
    Text,
    blank_to_none,
    invalid,
    opt_text,
    to_external_id,
    utc_today,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _present(*names: str) -> dict:
    """JSON Schema: these fields are given and not null (dumps carry unset optional fields as null)."""
    return {"required": list(names), "properties": {name: {"not": {"type": "null"}} for name in names}}


class Address(_Model):
    """A shipping address, with Keap's SHIPPING limits; `first_name`/`last_name` name its recipient.

    `region_code` is what Keap v2 wants (ISO 3166-2, `US-NY`); `region` (deprecated in Keap v2) may hold a state
    code or name instead, and becomes `region_code` when it is one of the country's subdivisions.
    """

    first_name: OptText = None
    last_name: OptText = None
    line1: opt_text(100) = None
    line2: opt_text(100) = None
    locality: opt_text(100) = None
    region: opt_text(50) = Field(None, description="Deprecated: a state code or name; give region_code instead.")
    region_code: RegionCode | None = Field(None, description="ISO 3166-2, e.g. US-NY")
    postal_code: opt_text(20) = None
    country_code: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3, e.g. USA")

    @model_validator(mode="after")
    def _region_in_country(self) -> Address:
        if (self.region or self.region_code) and not self.country_code:
            raise invalid("address", "region given without country_code", "Keap requires country_code with region",
                        field="country_code")
        if self.region_code and not self.region_code.startswith(f"{regions.alpha2(self.country_code)}-"):
            raise invalid("address", "region_code is not in country_code", "give the region of the address's country",
                        field="region_code")
        if self.region and not self.region_code:
            self.region_code = regions.region_code(self.country_code, self.region)
        return self


class BillingAddress(Address):
    """A billing address: Keap keeps shorter BILLING lines than SHIPPING ones."""

    line1: opt_text(75) = None
    line2: opt_text(75) = None
    locality: opt_text(50) = None
    postal_code: opt_text(15) = None


class Customer(_Model):
    email: Email
    given_name: opt_text(40) = None
    family_name: opt_text(40) = None
    phone: opt_text(40) = None
    company: OptText = None
    billing_address: BillingAddress | None = None
    shipping_address: Address | None = None


class Item(_Model):
    """One order line. DISCOUNT lines carry a positive `unit_price` that is subtracted from the total."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"anyOf": [{"not": {"required": ["type"]}}, {"properties": {"type": {"const": "PRODUCT"}}}]},
            "then": _present("sku"),
            "else": {**_present("name"), "not": _present("sku")},
        }
    )

    type: ItemType = "PRODUCT"
    sku: OptText = None
    name: OptText = None
    description: OptText = None
    quantity: Quantity = 1
    unit_price: Money
    unit_cost: Money | None = None

    @model_validator(mode="after")
    def _sku_or_name(self) -> Item:
        if self.type == "PRODUCT" and not self.sku:
            raise invalid("item", "PRODUCT items need a sku", "give the Keap product's SKU or set type", field="sku")
        if self.type != "PRODUCT" and self.sku:
            raise invalid("item", f"{self.type} items have no sku", "remove sku or make it a PRODUCT item", field="sku")
        if self.type != "PRODUCT" and not self.name:
            raise invalid("item", f"{self.type} items need a name", "name the line, e.g. \"UPS Ground\"", field="name")
        return self

    @property
    def amount(self) -> Decimal:
        """quantity × unit_price, negative for a DISCOUNT line."""
        line = self.quantity * self.unit_price
        return -line if self.type == "DISCOUNT" else line


class Payment(_Model):
    """An external payment to record (`method`) or a stored payment method to charge (`charge_payment_method_id`)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [_present("method"), _present("charge_payment_method_id")]})

    amount: PositiveMoney
    method: OptText = Field(None, description="A Manual Payment Type of the Keap account, e.g. \"Check\".")
    charge_payment_method_id: KeapId | None = None
    paid_at: AwareDatetime | None = Field(None, description="Defaults to the order's order_time.")
    external_id: Annotated[ShortText | None, BeforeValidator(blank_to_none)] = None
    notes: OptText = None
    _key: str = PrivateAttr("")

    @model_validator(mode="after")
    def _one_way_to_pay(self) -> Payment:
        if (self.method is None) == (self.charge_payment_method_id is None):
            raise invalid(
                "payment",
                "needs exactly one of method or charge_payment_method_id",
                "method records a payment made elsewhere; charge_payment_method_id charges a stored card",
                field="method",
            )
        return self

    @property
    def key(self) -> str:
        """Stable id the worker records this payment under, so it is entered exactly once.

        `external_id` when given; otherwise the payment's content ("c:" + a digest of amount, method or stored
        payment method, paid_at in UTC and notes), so the same payment sent again — in another position, by a
        corrected file or by a second producer — is the same payment. Identical payments within one order are
        numbered by occurrence ("c:…#2"); give them external ids to tell them apart for good.
        """
        return self.external_id or self._key or self.content_key()

    def content_key(self) -> str:
        paid = self.paid_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if self.paid_at else ""
        content = json.dumps([f"{self.amount:.2f}", self.method, self.charge_payment_method_id, paid, self.notes])
        return "c:" + hashlib.sha256(content.encode()).hexdigest()[:16]


class Subscription(_Model):
    sku: Text
    billing_cycle: BillingCycle
    billing_amount: Money | None = Field(None, description="Defaults to the Keap plan's price.")
    start_date: IsoDate | None = Field(None, description="Today (Keap's default) when omitted; never in the past.")
    quantity: Quantity = 1
    auto_charge: Annotated[bool, Field(strict=True)] = False
    charge_payment_method_id: KeapId | None = None

    @field_validator("start_date")
    @classmethod
    def _not_in_past(cls, value: date | None, info: ValidationInfo) -> date | None:
        today = (info.context or {}).get("today") or utc_today()
        if value is not None and value < today:
            raise invalid(
                "date_in_past",
                f"start_date {value} is in the past (today is {today} UTC); Keap only accepts today or later",
                "drop it to start today or set a future date",
            )
        return value

    @model_validator(mode="after")
    def _card_needs_auto_charge(self) -> Subscription:
        if self.charge_payment_method_id and not self.auto_charge:
            raise invalid("subscription", "charge_payment_method_id is set but auto_charge is false",
                        "set auto_charge to true or drop charge_payment_method_id", field="charge_payment_method_id")
        return self


class Order(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["items"], "properties": {"items": {"minItems": 1}}},
                {"required": ["subscriptions"], "properties": {"subscriptions": {"minItems": 1}}},
            ]
        }
    )

    external_id: ExternalId = Field(description="The store's order id: the business key (1-100 safe characters).")
    order_time: AwareDatetime
    title: OptText = Field(None, description="Defaults to \"Order <external_id>\".")
    order_type: Literal["ONLINE", "OFFLINE"] = "ONLINE"
    customer: Customer
    items: list[Item] = []
    payments: list[Payment] = []
    custom_fields: dict[Text, CustomValue] = Field({}, description="Keap order custom field label -> value.")
    subscriptions: list[Subscription] = []
    promo_codes: list[Text] = []
    notes: OptText = None

    @model_validator(mode="after")
    def _fill_defaults(self) -> Order:
        if not self.items and not self.subscriptions:
            raise invalid("order", "an order needs at least one item or subscription", "add its lines", field="items")
        self.title = self.title or f"Order {self.external_id}"
        seen: dict[str, int] = {}
        for payment in self.payments:
            payment.paid_at = payment.paid_at or self.order_time
            if not payment.external_id:
                base = payment.content_key()
                seen[base] = seen.get(base, 0) + 1
                payment._key = base if seen[base] == 1 else f"{base}#{seen[base]}"
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Order:
        if self.total < 0:
            raise invalid("order", f"discounts make the total negative ({self.total})",
                        "check the DISCOUNT lines' unit_price", field="items")
        if self.payments_total > self.total:
            raise invalid("order", f"payments total {self.payments_total} exceeds the order total {self.total}",
                        "fix the payment amounts or add the missing items (discounts subtract)", field="payments")
        keys = [payment.key for payment in self.payments]
        if len(set(keys)) != len(keys):
            raise invalid("order", "two payments have the same external_id", "give each payment its own external_id",
                        field="payments")
        plans = [(sub.sku, sub.billing_cycle) for sub in self.subscriptions]
        if len(set(plans)) != len(plans):
            # Keap's duplicate check (allow_duplicate=false) would silently refuse the second one.
            raise invalid("order", "the same subscription (sku and billing_cycle) appears twice",
                        "use one subscription with a higher quantity", field="subscriptions")
        return self

    @property
    def total(self) -> Decimal:
        """Sum of the item lines (DISCOUNT lines subtract); subscriptions bill separately and are not included."""
        return sum((item.amount for item in self.items), Decimal("0.00"))

    @property
    def payments_total(self) -> Decimal:
        return sum((payment.amount for payment in self.payments), Decimal("0.00"))


def _external_id_of(data: Any) -> str | None:
    value = data.get("external_id") if isinstance(data, dict) else None
    try:
        return to_external_id(value)
    except PydanticCustomError:
        return None


def parse_order(data: dict, *, today: date | None = None) -> Order:
    """Validate one order dict; `today` (default: today in UTC) is what subscription start dates must not precede.

    Raises OrderInvalid listing every broken field with a fix.
    """
    try:
        return Order.model_validate(data, context={"today": today or utc_today()})
    except ValidationError as exc:
        raise OrderInvalid(_external_id_of(data), [field_error(Order, e) for e in exc.errors()]) from None


def order_json_schema() -> dict:
    """JSON Schema (2020-12) of one order, for services that validate before sending."""
    schema = Order.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:keap-orders:order", **schema}
