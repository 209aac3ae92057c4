"""The order message contract (pydantic v2): what producers send and what the worker re-reads.

`parse_order()` validates one order dict and raises `OrderInvalid` with field-level, PII-free errors.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
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

from worker import regions

CENT = Decimal("0.01")
MONEY_LIMIT = Decimal("1000000000")  # no real order line reaches a billion; larger is a unit mix-up
# Amounts as text: plain ASCII digits, at most 2 decimals, no sign, exponent, separators or spaces. The same
# pattern is the validator's and the published schema's, so the two cannot disagree.
MONEY_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,2})?$"
_MONEY_RE = re.compile(MONEY_PATTERN)
MAX_TEXT = 65535  # the most any Keap text field holds (custom fields document it); a bigger value is not an order's
INT32_MAX = 2**31 - 1  # Keap's quantities are int32
INT64_LIMIT = 2**63  # Keap ids and whole-number values
EXTERNAL_ID_CHARS = "A-Za-z0-9._:/#@+-"
# The external id is written into a Keap filter `field==value`, where ; = * , and spaces have meaning.
EXTERNAL_ID_RE = re.compile(rf"^[{EXTERNAL_ID_CHARS}]{{1,100}}$")
_EXTERNAL_ID_BAD_CHAR = re.compile(rf"[^{EXTERNAL_ID_CHARS}]")
_DATETIME_BODY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
_DATETIME_OFFSET = r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
_DATETIME_RE = re.compile(rf"^{_DATETIME_BODY}{_DATETIME_OFFSET}?$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# Emails Keap can be searched for: contacts are found with the filter `email==value`, where ; separates clauses,
# = is the operator, a trailing * is a wildcard and , separates list values, and no escaping exists. So: RFC 5322
# "atext" without * and =, dot-separated, an ASCII domain with a TLD; no quotes, spaces, commas or semicolons.
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'+/?^_{|}~-]+"
_EMAIL_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_EMAIL_ATOM}(\.{_EMAIL_ATOM})*@({_EMAIL_LABEL}\.)+[A-Za-z]{{2,63}}$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)
EMAIL_MAX = 75  # Keap's limit for EMAIL1
_COUNTRY_RE = re.compile(r"^[A-Z]{3}$")
REGION_CODE_PATTERN = r"^[A-Z]{2}-[A-Z0-9]{1,3}$"
_REGION_CODE_RE = re.compile(REGION_CODE_PATTERN)


def utc_today() -> date:
    """Today's date in UTC: what subscription start dates are compared with unless a test passes `today`."""
    return datetime.now(timezone.utc).date()


def _fail(kind: str, message: str, hint: str = "", **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"hint": hint, **ctx})


# --- value types -------------------------------------------------------------------------------------------


def _money_text_problem(text: str) -> PydanticCustomError:
    """Why a text amount does not match MONEY_PATTERN, in the words an operator needs."""
    body = text.strip()
    if body.startswith("-"):
        return _fail("money_range", "must not be negative", "discounts are DISCOUNT items with a positive price")
    if any(ch.isdigit() and not "0" <= ch <= "9" for ch in body):
        return _fail("money_format", "has digits other than 0-9", "write the amount with ASCII digits, like 19.90")
    if "e" in body.lower() and body.lower() not in ("nan", "inf", "infinity"):
        return _fail("money_format", "is written with an exponent", "write it in full, like 1000.00")
    if "_" in body or "," in body or " " in body:
        return _fail("money_format", "has separators", "write it without thousands separators, like 1000.00")
    if re.fullmatch(r"[0-9]+\.[0-9]{3,}", body):
        return _fail("money_decimals", "at most 2 decimals", "round to cents")
    if re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", body):
        if body != text:
            return _fail("money_format", "has spaces around it", "write the amount alone, like 19.90")
        return _fail("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
    if body.lower() in ("nan", "inf", "infinity", "+inf", "-inf"):
        return _fail("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
    return _fail("money_format", "not a decimal amount", "write it like 19.90")


def _money_validator(*, positive: bool):
    def to_money(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise _fail("money_type", "must be a decimal string such as \"19.90\" or a number", "write the amount")
        if isinstance(value, str):
            if not _MONEY_RE.match(value):
                raise _money_text_problem(value)
            amount = Decimal(value)
        elif isinstance(value, int):
            # Compared as an int: str() of a 5,000-digit number raises in Python, and no amount is that big.
            if not -MONEY_LIMIT < value < MONEY_LIMIT:
                raise _fail("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
            amount = Decimal(value)
        else:
            # A JSON number is judged by its value (a JSON Schema cannot see how it was written): str() first, so
            # the float 19.9 becomes exactly 19.90, not 19.899999999999998578...
            amount = Decimal(str(value)) if isinstance(value, float) else value
            if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
                raise _fail("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
            if amount != amount.quantize(CENT):
                raise _fail("money_decimals", "at most 2 decimals", "round to cents")
        if amount < 0:
            raise _fail("money_range", "must not be negative", "discounts are DISCOUNT items with a positive price")
        if positive and amount <= 0:
            raise _fail("money_range", "must be greater than 0", "give a positive amount or leave the entry out")
        return amount.quantize(CENT)

    return to_money


def _money_schema(*, positive: bool) -> dict:
    """Money in JSON Schema: text matching MONEY_PATTERN, or a number in range that is a whole number of cents.

    `multipleOf: 0.01` is exact only for validators that read JSON numbers as decimals (binary floats make
    19.9 / 0.01 = 1989.999...): read with `parse_float=Decimal` in Python.
    """
    number: dict[str, Any] = {"type": "number", "exclusiveMaximum": int(MONEY_LIMIT), "multipleOf": 0.01}
    number |= {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    text: dict[str, Any] = {"type": "string", "pattern": MONEY_PATTERN}
    if positive:
        text["not"] = {"pattern": r"^0*(\.0*)?$"}
    return {"anyOf": [text, number],
            "description": "Decimal amount, at most 2 decimals, no sign or exponent; a string such as \"19.90\" is "
                           "preferred."}


_money_json = PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json")
Money = Annotated[
    Decimal, PlainValidator(_money_validator(positive=False)), _money_json, WithJsonSchema(_money_schema(positive=False))
]
PositiveMoney = Annotated[
    Decimal, PlainValidator(_money_validator(positive=True)), _money_json, WithJsonSchema(_money_schema(positive=True))
]


def _to_aware_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value
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
    if isinstance(value, str) and _DATE_RE.match(value):
        try:
            return date.fromisoformat(value)
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
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**100:
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


ExternalId = Annotated[str, PlainValidator(_to_external_id), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": EXTERNAL_ID_RE.pattern},
              {"type": "integer", "minimum": 0, "exclusiveMaximum": 10**100}]})]


def _to_keap_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < INT64_LIMIT:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        return value
    raise _fail("keap_id", "must be a Keap id (digits)", "copy the id from Keap, e.g. \"1\"")


KeapId = Annotated[str, PlainValidator(_to_keap_id), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^[0-9]{1,19}$"},
              {"type": "integer", "minimum": 1, "exclusiveMaximum": INT64_LIMIT}]})]


def _text_validator(max_length: int):
    # Stripping here, not with StringConstraints(strip_whitespace): pydantic-core keeps the strings it strips
    # in a cache, so a reader's memory grew with the file (about 1 MB more after 20k orders than after 1k).
    def to_text(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail("string_type", "must be text", "write it as a JSON string")
        # The length counts the text as given (as the schema's maxLength does), spaces included.
        if len(value) > max_length:
            raise _fail("string_too_long", f"must be at most {max_length} characters", "shorten it")
        text = value.strip()
        if not text:
            raise _fail("string_too_short", "must not be blank", "give a value or leave the field out")
        return text

    return to_text


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def text(max_length: int = MAX_TEXT) -> Any:
    """Non-blank text of at most `max_length` characters (Keap's limit for the field it goes into)."""
    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}
    return Annotated[str, PlainValidator(_text_validator(max_length)), WithJsonSchema(schema)]


def opt_text(max_length: int = MAX_TEXT) -> Any:
    """Optional text: blank counts as not given."""
    return Annotated[text(max_length) | None, BeforeValidator(_blank_to_none)]


Text = text()
OptText = opt_text()
ShortText = text(100)
Quantity = Annotated[int, Field(strict=True, ge=1, le=INT32_MAX)]


def _check_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value):
        raise _fail("email", "not a valid email address",
                    "it needs one @ and a domain such as example.com, and none of ; = * , spaces or quotes "
                    "(Keap's contact search cannot match those)")
    if len(value) > EMAIL_MAX:
        raise _fail("email", f"longer than {EMAIL_MAX} characters", "Keap's email field holds 75 characters at most")
    return value


def _check_country(value: Any) -> str:
    if not isinstance(value, str) or not _COUNTRY_RE.match(value) or regions.alpha3(value) != value:
        raise _fail("country_code", "must be an ISO 3166-1 alpha-3 code", "Keap wants 3 capital letters such as USA")
    return value


def _check_region_code(value: Any) -> str:
    if not isinstance(value, str) or not _REGION_CODE_RE.match(value) or not regions.is_region_code(value):
        raise _fail("region_code", "must be an ISO 3166-2 subdivision code", "write it like US-NY (country-state)")
    return value


Email = Annotated[str, PlainValidator(_check_email),
                  WithJsonSchema({"type": "string", "pattern": EMAIL_PATTERN, "maxLength": EMAIL_MAX})]
CountryCode = Annotated[str, PlainValidator(_check_country), WithJsonSchema({"type": "string", "pattern": _COUNTRY_RE.pattern})]
RegionCode = Annotated[str, PlainValidator(_check_region_code),
                       WithJsonSchema({"type": "string", "pattern": REGION_CODE_PATTERN})]
def _to_custom_value(value: Any) -> str | int | bool | Decimal:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -INT64_LIMIT < value < INT64_LIMIT:
            raise _fail("custom_value", "is a whole number beyond 64 bits", "send it as a string")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
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
            raise _fail("address", "region given without country_code", "Keap requires country_code with region",
                        field="country_code")
        if self.region_code and not self.region_code.startswith(f"{regions.alpha2(self.country_code)}-"):
            raise _fail("address", "region_code is not in country_code", "give the region of the address's country",
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
               "less_than_equal", "external_id_chars", "external_id_length", "keap_id"}
_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "int_type": "write a whole number",
    "greater_than_equal": "use 1 or more",
    "less_than_equal": "split the line or check the unit",
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


def _shown(value: Any) -> str:
    """A bad value as it may appear in an error: short, and never a str() that itself fails (huge ints)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return "a number with about %d digits" % (value.bit_length() * 0.30103)
    text = value if isinstance(value, str) else str(value) if isinstance(value, (int, float, Decimal, date)) else ""
    return repr(text[:40]) if text or isinstance(value, str) else f"a {type(value).__name__}"


def _short(name: Any) -> str:
    text = str(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(loc: tuple) -> str:
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue
        elif index and loc[index - 1] == "custom_fields":
            path += f"[{_short(part)!r}]"
        else:
            path += f".{_short(part)}" if path else _short(part)
    return path


def _field_error(error: dict) -> FieldError:
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    if ctx.get("field"):
        loc += (ctx["field"],)
    path = _path(loc)
    message = _MESSAGES.get(kind) or error["msg"].replace("Input should be", "must be")
    if kind == "extra_forbidden":
        allowed = ", ".join(_model_at(loc).model_fields)
        message = f"unknown field {_short(loc[-1])!r} (allowed: {allowed})"
    if kind in _SHOW_INPUT and not path.startswith("customer"):
        message += f" (got {_shown(error['input'])})"
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
