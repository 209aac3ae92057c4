"""The contract's field types: money, times, ids, text, emails, countries and custom values, each validated with
an error that names the fix (PydanticCustomError kinds that `errors.py` turns into FieldErrors)."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from worker.contract import regions

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


def invalid(kind: str, message: str, hint: str = "", **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"hint": hint, **ctx})


# --- value types -------------------------------------------------------------------------------------------


def _money_text_problem(text: str) -> PydanticCustomError:
    """Why a text amount does not match MONEY_PATTERN, in the words an operator needs."""
    body = text.strip()
    if body.startswith("-"):
        return invalid("money_range", "must not be negative", "discounts are DISCOUNT items with a positive price")
    if any(ch.isdigit() and not "0" <= ch <= "9" for ch in body):
        return invalid("money_format", "has digits other than 0-9", "write the amount with ASCII digits, like 19.90")
    if "e" in body.lower() and body.lower() not in ("nan", "inf", "infinity"):
        return invalid("money_format", "is written with an exponent", "write it in full, like 1000.00")
    if "_" in body or "," in body or " " in body:
        return invalid("money_format", "has separators", "write it without thousands separators, like 1000.00")
    if re.fullmatch(r"[0-9]+\.[0-9]{3,}", body):
        return invalid("money_decimals", "at most 2 decimals", "round to cents")
    if re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", body):
        if body != text:
            return invalid("money_format", "has spaces around it", "write the amount alone, like 19.90")
        return invalid("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
    if body.lower() in ("nan", "inf", "infinity", "+inf", "-inf"):
        return invalid("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
    return invalid("money_format", "not a decimal amount", "write it like 19.90")


def _money_validator(*, positive: bool):
    def to_money(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise invalid("money_type", "must be a decimal string such as \"19.90\" or a number", "write the amount")
        if isinstance(value, str):
            if not _MONEY_RE.match(value):
                raise _money_text_problem(value)
            amount = Decimal(value)
        elif isinstance(value, int):
            # Compared as an int: str() of a 5,000-digit number raises in Python, and no amount is that big.
            if not -MONEY_LIMIT < value < MONEY_LIMIT:
                raise invalid("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
            amount = Decimal(value)
        else:
            # A JSON number is judged by its value (a JSON Schema cannot see how it was written): str() first, so
            # the float 19.9 becomes exactly 19.90, not 19.899999999999998578...
            amount = Decimal(str(value)) if isinstance(value, float) else value
            if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
                raise invalid("money_range", "not a usable amount", f"amounts must be below {MONEY_LIMIT}")
            if amount != amount.quantize(CENT):
                raise invalid("money_decimals", "at most 2 decimals", "round to cents")
        if amount < 0:
            raise invalid("money_range", "must not be negative", "discounts are DISCOUNT items with a positive price")
        if positive and amount <= 0:
            raise invalid("money_range", "must be greater than 0", "give a positive amount or leave the entry out")
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
            raise invalid("datetime_format", "not an ISO-8601 date-time", "write it like 2024-03-05T14:22:10Z")
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise invalid("datetime_format", "not a real date-time", "check the month, day and time") from None
    else:
        raise invalid("datetime_type", "must be an ISO-8601 string", "write it like 2024-03-05T14:22:10Z")
    if parsed.utcoffset() is None:
        raise invalid(
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
            raise invalid("date_format", "not a real date", "check the month and day") from None
    raise invalid("date_format", "must be a date YYYY-MM-DD", "write it like 2026-12-15")


IsoDate = Annotated[
    date,
    PlainValidator(_to_date),
    PlainSerializer(date.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DATE_RE.pattern}),
]


def to_external_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**100:
        value = str(value)  # store exports often number their orders
    if not isinstance(value, str):
        raise invalid("external_id_type", "must be a string", "give the store's order id")
    if not 1 <= len(value) <= 100:
        raise invalid("external_id_length", "must be 1 to 100 characters long", "shorten it or give the store's order id")
    bad = _EXTERNAL_ID_BAD_CHAR.search(value)
    if bad:
        what = "whitespace" if bad.group().isspace() else repr(bad.group())
        raise invalid(
            "external_id_chars",
            f"contains {what}, which cannot go into a Keap filter (field==value)",
            "use only letters, digits and . _ : / # @ + -",
        )
    return value


ExternalId = Annotated[str, PlainValidator(to_external_id), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": EXTERNAL_ID_RE.pattern},
              {"type": "integer", "minimum": 0, "exclusiveMaximum": 10**100}]})]


def _to_keap_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < INT64_LIMIT:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        return value
    raise invalid("keap_id", "must be a Keap id (digits)", "copy the id from Keap, e.g. \"1\"")


KeapId = Annotated[str, PlainValidator(_to_keap_id), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^[0-9]{1,19}$"},
              {"type": "integer", "minimum": 1, "exclusiveMaximum": INT64_LIMIT}]})]


def _text_validator(max_length: int):
    # Stripping here, not with StringConstraints(strip_whitespace): pydantic-core keeps the strings it strips
    # in a cache, so a reader's memory grew with the file (about 1 MB more after 20k orders than after 1k).
    def to_text(value: Any) -> str:
        if not isinstance(value, str):
            raise invalid("string_type", "must be text", "write it as a JSON string")
        # The length counts the text as given (as the schema's maxLength does), spaces included.
        if len(value) > max_length:
            raise invalid("string_too_long", f"must be at most {max_length} characters", "shorten it")
        text = value.strip()
        if not text:
            raise invalid("string_too_short", "must not be blank", "give a value or leave the field out")
        return text

    return to_text


def blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def text(max_length: int = MAX_TEXT) -> Any:
    """Non-blank text of at most `max_length` characters (Keap's limit for the field it goes into)."""
    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}
    return Annotated[str, PlainValidator(_text_validator(max_length)), WithJsonSchema(schema)]


def opt_text(max_length: int = MAX_TEXT) -> Any:
    """Optional text: blank counts as not given."""
    return Annotated[text(max_length) | None, BeforeValidator(blank_to_none)]


Text = text()
OptText = opt_text()
ShortText = text(100)
Quantity = Annotated[int, Field(strict=True, ge=1, le=INT32_MAX)]


def _email_problem(value: str) -> tuple[str, str]:
    """What is wrong with an address the pattern refuses, in words, without echoing it (it is customer data)."""
    if value.count("@") != 1:
        return "needs exactly one @", "write it like name@example.com"
    mailbox, domain = value.split("@")
    if not value.isascii():
        where = "before the @" if not mailbox.isascii() else "in the domain"
        fix = ("ask the customer for an address in plain ASCII letters" if not mailbox.isascii() else
               "write the domain in its ASCII (punycode, xn--...) form")
        return f"has a non-ASCII letter {where}", f"Keap's email field and contact search take ASCII only: {fix}"
    if any(char in mailbox for char in ";=*, \"'"):
        return ("has one of ; = * , a space or a quote before the @",
                "remove it: Keap's contact search cannot match such addresses")
    if not mailbox or mailbox.startswith(".") or mailbox.endswith(".") or ".." in mailbox:
        return "has an empty part before the @ (or a dot at its start, end, or twice)", "check the address"
    return ("has a domain that is not a host name such as example.com",
            "the domain needs letters, digits or hyphens, a dot, and a top-level domain")


def _check_email(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid("email", "must be text", "write the address as a JSON string")
    if not _EMAIL_RE.match(value):
        message, hint = _email_problem(value)
        raise invalid("email", f"not a valid email address: it {message}", hint)
    if len(value) > EMAIL_MAX:
        raise invalid("email", f"longer than {EMAIL_MAX} characters", "Keap's email field holds 75 characters at most")
    return value


def _check_country(value: Any) -> str:
    if not isinstance(value, str) or not _COUNTRY_RE.match(value) or regions.alpha3(value) != value:
        raise invalid("country_code", "must be an ISO 3166-1 alpha-3 code", "Keap wants 3 capital letters such as USA")
    return value


def _check_region_code(value: Any) -> str:
    if not isinstance(value, str) or not _REGION_CODE_RE.match(value) or not regions.is_region_code(value):
        raise invalid("region_code", "must be an ISO 3166-2 subdivision code", "write it like US-NY (country-state)")
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
            raise invalid("custom_value", "is a whole number beyond 64 bits", "send it as a string")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise invalid("custom_value", "is longer than 65535 characters", "Keap text custom fields hold 65535 at most")
        return value
    if isinstance(value, (float, Decimal)):
        number = Decimal(str(value))
        # Numbers are dumped as JSON numbers, so they must survive the trip through a float unchanged.
        if not number.is_finite() or Decimal(repr(float(number))) != number:
            raise invalid("custom_value", "is not a number a JSON float can hold exactly", "send it as a string")
        return number
    raise invalid("custom_value", "must be text, a number or true/false", "write the value Keap should store")


CustomValue = Annotated[
    Any,
    PlainValidator(_to_custom_value),
    PlainSerializer(lambda v: float(v) if isinstance(v, Decimal) else v, when_used="json"),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
ItemType = Literal["PRODUCT", "SHIPPING", "TAX", "FEE", "DISCOUNT"]
BillingCycle = Literal["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
