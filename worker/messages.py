"""The order message contract (pydantic v2): what producers send and what the worker re-reads.

`parse_order()` validates one order dict and raises `OrderInvalid` with field-level, PII-free errors.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

CENT = Decimal("0.01")
MONEY_LIMIT = Decimal("1000000000")  # no real order line reaches a billion; larger is a unit mix-up
EXTERNAL_ID_CHARS = "A-Za-z0-9._:/#@+-"
# The external id is written into a Keap filter `field==value`, where ; = * , and spaces have meaning.
EXTERNAL_ID_RE = re.compile(rf"^[{EXTERNAL_ID_CHARS}]{{1,100}}$")
_EXTERNAL_ID_BAD_CHAR = re.compile(rf"[^{EXTERNAL_ID_CHARS}]")
_DATETIME_BODY = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
_DATETIME_OFFSET = r"([Zz]|[+-]\d{2}:\d{2})"
_DATETIME_RE = re.compile(rf"^{_DATETIME_BODY}{_DATETIME_OFFSET}?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_COUNTRY_RE = re.compile(r"^[A-Z]{3}$")
_DECIMAL_PATTERN = r"^-?\d+(\.\d{1,2})?$"


def utc_today() -> date:
    """Today's date in UTC: what subscription start dates are compared with unless a test passes `today`."""
    return datetime.now(timezone.utc).date()


def _fail(kind: str, message: str, hint: str = "", **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"hint": hint, **ctx})


# --- value types -------------------------------------------------------------------------------------------


def _money_validator(*, positive: bool):
    def to_money(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise _fail("money_type", "must be a decimal string such as \"19.90\" or a number", "write the amount")
        try:
            # str() first: the float 19.9 must become exactly 19.90, not 19.899999999999998578...
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise _fail("money_format", "not a decimal amount", "write it like 19.90") from None
        if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
            raise _fail("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
        if amount != amount.quantize(CENT):
            raise _fail("money_decimals", "at most 2 decimals", "round to cents")
        if positive and amount <= 0:
            raise _fail("money_range", "must be greater than 0", "give a positive amount or leave the entry out")
        if amount < 0:
            raise _fail("money_range", "must not be negative", "discounts are DISCOUNT items with a positive price")
        return amount.quantize(CENT)

    return to_money


_MONEY_SCHEMA = {
    "anyOf": [{"type": "string", "pattern": _DECIMAL_PATTERN}, {"type": "number"}],
    "description": "Decimal amount with at most 2 decimals; a string such as \"19.90\" is preferred.",
}
_money_json = PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json")
Money = Annotated[
    Decimal, PlainValidator(_money_validator(positive=False)), _money_json, WithJsonSchema({**_MONEY_SCHEMA, "minimum": 0})
]
PositiveMoney = Annotated[
    Decimal,
    PlainValidator(_money_validator(positive=True)),
    _money_json,
    WithJsonSchema({**_MONEY_SCHEMA, "exclusiveMinimum": 0}),
]


def _to_aware_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not _DATETIME_RE.match(text):
            raise _fail("datetime_format", "not an ISO-8601 date-time", "write it like 2024-03-05T14:22:10Z")
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _fail("datetime_format", "not a real date-time", "check the month, day and time") from None
    else:
        raise _fail("datetime_type", "must be an ISO-8601 string", "write it like 2024-03-05T14:22:10Z")
    if parsed.utcoffset() is None:
        raise _fail(
            "datetime_naive", "has no UTC offset", "add 'Z' for UTC or the offset such as -05:00 (a bare time is ambiguous)"
        )
    return parsed


def _dump_datetime(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


AwareDatetime = Annotated[
    datetime,
    PlainValidator(_to_aware_datetime),
    PlainSerializer(_dump_datetime, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": f"^{_DATETIME_BODY}{_DATETIME_OFFSET}$"}),
]


def _to_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _fail("date_format", "not a real date", "check the month and day") from None
    raise _fail("date_format", "must be a date YYYY-MM-DD", "write it like 2026-12-15")


IsoDate = Annotated[
    date,
    PlainValidator(_to_date),
    PlainSerializer(date.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DATE_RE.pattern}),
]


def _to_external_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # store exports often number their orders
    if not isinstance(value, str):
        raise _fail("external_id_type", "must be a string", "give the store's order id")
    if not 1 <= len(value) <= 100:
        raise _fail("external_id_length", "must be 1 to 100 characters long", "shorten it or give the store's order id")
    bad = _EXTERNAL_ID_BAD_CHAR.search(value)
    if bad:
        what = "whitespace" if bad.group().isspace() else repr(bad.group())
        raise _fail(
            "external_id_chars",
            f"contains {what}, which cannot go into a Keap filter (field==value)",
            "use only letters, digits and . _ : / # @ + -",
        )
    return value


ExternalId = Annotated[
    str, PlainValidator(_to_external_id), WithJsonSchema({"type": "string", "pattern": EXTERNAL_ID_RE.pattern})
]


def _to_keap_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    raise _fail("keap_id", "must be a Keap id (digits)", "copy the id from Keap, e.g. \"1\"")


KeapId = Annotated[str, PlainValidator(_to_keap_id), WithJsonSchema({"type": "string", "pattern": r"^\d+$"})]


def _text_validator(max_length: int | None):
    # Stripping here, not with StringConstraints(strip_whitespace): pydantic-core keeps the strings it strips
    # in a cache, so a reader's memory grew with the file (about 1 MB more after 20k orders than after 1k).
    def to_text(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail("string_type", "must be text", "write it as a JSON string")
        text = value.strip()
        if not text:
            raise _fail("string_too_short", "must not be blank", "give a value or leave the field out")
        if max_length and len(text) > max_length:
            raise _fail("string_too_long", f"must be at most {max_length} characters", "shorten it")
        return text

    return to_text


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str, PlainValidator(_text_validator(None)), WithJsonSchema({"type": "string", "minLength": 1})]
OptText = Annotated[Text | None, BeforeValidator(_blank_to_none)]
ShortText = Annotated[
    str, PlainValidator(_text_validator(100)), WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 100})
]
Quantity = Annotated[int, Field(strict=True, ge=1)]


def _check_email(value: Any) -> str:
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > 254 or not _EMAIL_RE.match(value):
        raise _fail("email", "not a valid email address", "it needs one @ and a domain such as example.com")
    return value


def _check_country(value: Any) -> str:
    if not isinstance(value, str) or not _COUNTRY_RE.match(value.strip()):
        raise _fail("country_code", "must be an ISO 3166-1 alpha-3 code", "Keap wants 3 capital letters such as USA")
    return value.strip()


Email = Annotated[str, PlainValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})]
CountryCode = Annotated[str, PlainValidator(_check_country), WithJsonSchema({"type": "string", "pattern": _COUNTRY_RE.pattern})]


def _to_custom_value(value: Any) -> str | int | bool | Decimal:
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        if len(value) > 65535:
            raise _fail("custom_value", "is longer than 65535 characters", "Keap text custom fields hold 65535 at most")
        return value
    if isinstance(value, (float, Decimal)):
        number = Decimal(str(value))
        # Numbers are dumped as JSON numbers, so they must survive the trip through a float unchanged.
        if not number.is_finite() or Decimal(repr(float(number))) != number:
            raise _fail("custom_value", "is not a number a JSON float can hold exactly", "send it as a string")
        return number
    raise _fail("custom_value", "must be text, a number or true/false", "write the value Keap should store")


CustomValue = Annotated[
    Any,
    PlainValidator(_to_custom_value),
    PlainSerializer(lambda v: float(v) if isinstance(v, Decimal) else v, when_used="json"),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
ItemType = Literal["PRODUCT", "SHIPPING", "TAX", "FEE", "DISCOUNT"]
BillingCycle = Literal["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]


# --- models ------------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _present(*names: str) -> dict:
    """JSON Schema: these fields are given and not null (dumps carry unset optional fields as null)."""
    return {"required": list(names), "properties": {name: {"not": {"type": "null"}} for name in names}}


class Address(_Model):
    """A billing or shipping address; `first_name`/`last_name` name the recipient of a shipping address."""

    first_name: OptText = None
    last_name: OptText = None
    line1: OptText = None
    line2: OptText = None
    locality: OptText = None
    region: OptText = None
    postal_code: OptText = None
    country_code: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3, e.g. USA")

    @model_validator(mode="after")
    def _region_needs_country(self) -> Address:
        if self.region and not self.country_code:
            raise _fail("address", "region given without country_code", "Keap requires country_code with region",
                        field="country_code")
        return self


class Customer(_Model):
    email: Email
    given_name: OptText = None
    family_name: OptText = None
    phone: OptText = None
    company: OptText = None
    billing_address: Address | None = None
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
            raise _fail("item", "PRODUCT items need a sku", "give the Keap product's SKU or set type", field="sku")
        if self.type != "PRODUCT" and self.sku:
            raise _fail("item", f"{self.type} items have no sku", "remove sku or make it a PRODUCT item", field="sku")
        if self.type != "PRODUCT" and not self.name:
            raise _fail("item", f"{self.type} items need a name", "name the line, e.g. \"UPS Ground\"", field="name")
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
    external_id: Annotated[ShortText | None, BeforeValidator(_blank_to_none)] = None
    notes: OptText = None
    _key: str = PrivateAttr("")

    @model_validator(mode="after")
    def _one_way_to_pay(self) -> Payment:
        if (self.method is None) == (self.charge_payment_method_id is None):
            raise _fail(
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
            raise _fail(
                "date_in_past",
                f"start_date {value} is in the past (today is {today} UTC); Keap only accepts today or later",
                "drop it to start today or set a future date",
            )
        return value

    @model_validator(mode="after")
    def _card_needs_auto_charge(self) -> Subscription:
        if self.charge_payment_method_id and not self.auto_charge:
            raise _fail("subscription", "charge_payment_method_id is set but auto_charge is false",
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
            raise _fail("order", "an order needs at least one item or subscription", "add its lines", field="items")
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
            raise _fail("order", f"discounts make the total negative ({self.total})",
                        "check the DISCOUNT lines' unit_price", field="items")
        if self.payments_total > self.total:
            raise _fail("order", f"payments total {self.payments_total} exceeds the order total {self.total}",
                        "fix the payment amounts or add the missing items (discounts subtract)", field="payments")
        keys = [payment.key for payment in self.payments]
        if len(set(keys)) != len(keys):
            raise _fail("order", "two payments have the same external_id", "give each payment its own external_id",
                        field="payments")
        plans = [(sub.sku, sub.billing_cycle) for sub in self.subscriptions]
        if len(set(plans)) != len(plans):
            # Keap's duplicate check (allow_duplicate=false) would silently refuse the second one.
            raise _fail("order", "the same subscription (sku and billing_cycle) appears twice",
                        "use one subscription with a higher quantity", field="subscriptions")
        return self

    @property
    def total(self) -> Decimal:
        """Sum of the item lines (DISCOUNT lines subtract); subscriptions bill separately and are not included."""
        return sum((item.amount for item in self.items), Decimal("0.00"))

    @property
    def payments_total(self) -> Decimal:
        return sum((payment.amount for payment in self.payments), Decimal("0.00"))



# --- errors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted/indexed path such as "items[0].unit_price"; "" for the order as a whole
    message: str
    hint: str

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text}; {self.hint}" if self.hint else text


class OrderInvalid(ValueError):
    """An order that breaks the contract; `errors` says which fields and how to fix them."""

    def __init__(self, external_id: str | None, errors: list[FieldError]):
        self.external_id = external_id
        self.errors = list(errors)
        super().__init__(external_id, self.errors)

    def __str__(self) -> str:
        return f"order {self.external_id or '(unknown external_id)'}: " + " | ".join(map(str, self.errors))

    def __reduce__(self):
        return (type(self), (self.external_id, self.errors))


# Error types whose bad value may be shown: amounts, times, counts and enums, never customer data.
_SHOW_INPUT = {"money_format", "money_decimals", "money_range", "datetime_format", "datetime_naive", "date_format",
               "int_type", "int_from_float", "int_parsing", "greater_than_equal", "literal_error", "bool_type",
               "external_id_chars", "external_id_length", "keap_id"}
_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "int_type": "write a whole number",
    "greater_than_equal": "use 1 or more",
    "bool_type": "write true or false",
    "list_type": "give a JSON list",
    "dict_type": "give a JSON object",
    "model_type": "give a JSON object",
    "literal_error": "use one of the listed values",
}
_FIELD_HINTS = {
    "unit_price": "every item needs the price charged, so the order total is exact (Keap's catalog price is not used)",
}
_MESSAGES = {
    "missing": "is required",
    "model_type": "must be a JSON object",
    "int_type": "must be a whole number",
}


def _models_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _models_in(arg)
        if found:
            return found
    return None


def _model_at(loc: tuple) -> type[BaseModel]:
    """The model that holds the last element of an error location (to list its allowed fields)."""
    model: type[BaseModel] = Order
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = _models_in(field.annotation) if field else None
        if inner is not None:
            model = inner
    return model


def _path(loc: tuple) -> str:
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue
        elif index and loc[index - 1] == "custom_fields":
            path += f"[{part!r}]"
        else:
            path += f".{part}" if path else part
    return path


def _field_error(error: dict) -> FieldError:
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    if ctx.get("field"):
        loc += (ctx["field"],)
    path = _path(loc)
    message = _MESSAGES.get(kind) or error["msg"].replace("Input should be", "must be")
    if kind == "extra_forbidden":
        allowed = ", ".join(_model_at(loc).model_fields)
        message = f"unknown field {loc[-1]!r} (allowed: {allowed})"
    if kind in _SHOW_INPUT and not path.startswith("customer"):
        message += f" (got {str(error['input'])[:40]!r})"
    last = loc[-1] if loc else ""
    hint = (ctx.get("hint") or (_FIELD_HINTS.get(last) if kind == "missing" else None) or _HINTS.get(kind)
            or "see the order JSON schema (keap-orders schema)")
    return FieldError(path, message, hint)


def _external_id_of(data: Any) -> str | None:
    value = data.get("external_id") if isinstance(data, dict) else None
    try:
        return _to_external_id(value)
    except PydanticCustomError:
        return None


def parse_order(data: dict, *, today: date | None = None) -> Order:
    """Validate one order dict; `today` (default: today in UTC) is what subscription start dates must not precede.

    Raises OrderInvalid listing every broken field with a fix.
    """
    try:
        return Order.model_validate(data, context={"today": today or utc_today()})
    except ValidationError as exc:
        raise OrderInvalid(_external_id_of(data), [_field_error(e) for e in exc.errors()]) from None


def order_json_schema() -> dict:
    """JSON Schema (2020-12) of one order, for services that validate before sending."""
    schema = Order.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:keap-orders:order", **schema}
