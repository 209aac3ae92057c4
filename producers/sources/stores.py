"""What store exports share on their way to an order: amounts and times as the stores write them, ISO-2
countries, full names, gateways mapped to Keap's Manual Payment Types, and item lines that add up to the store's
total. Errors name the export's own column, never its value when that could be customer data.
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from producers.sources.base import Column, Header, ReadOptions
from worker.contract import regions
from worker.contract import CENT, FieldError

ZERO = Decimal("0.00")
_AMOUNT = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,12})?$")
_EXCEL_SERIAL = re.compile(r"^[0-9]{5}(\.[0-9]+)?$")
# Custom fields every store import sets (created as text fields in Keap when missing).
STATUS_FIELD, CURRENCY_FIELD, REFUNDED_FIELD = "Order Status", "Currency", "Refunded Amount"


class Errors(list):
    """FieldErrors collected while mapping one order."""

    def add(self, field: str, message: str, hint: str) -> None:
        self.append(FieldError(field, message, hint))


def amount(value: Any, column: str, errors: Errors) -> Decimal | None:
    """A store amount (`64.78`, `163056`, `-10.00`) as a Decimal; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        text = str(value) if isinstance(value, Decimal) or abs(value) < 10**12 else "x"
    else:
        text = str(value).strip() if isinstance(value, (str, float)) else "x"
    if not _AMOUNT.match(text):
        errors.add(column, f"not an amount (got {text[:20]!r})", "amounts are plain numbers such as 19.90")
        return None
    return Decimal(text)


def whole(value: Any, column: str, errors: Errors) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    text = value.strip() if isinstance(value, str) else ""
    if re.fullmatch(r"[0-9]{1,9}", text):
        return int(text)
    if re.fullmatch(r"[0-9]{1,9}\.0+", text):
        return int(text.split(".")[0])
    errors.add(column, f"not a whole number (got {str(value)[:20]!r})", "quantities are whole numbers such as 2")
    return None


def cents(value: Decimal) -> str:
    return str(value.quantize(CENT))


def store_time(value: Any, column: str, errors: Errors, options: ReadOptions) -> str | None:
    """An ISO-8601 time with an offset from the ways stores write times: `2024-03-05 14:22:10 -0500` (Shopify),
    `2024-03-05T14:22:10+01:00`, or times without an offset (site-local: needs STORE_TIMEZONE)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    if _EXCEL_SERIAL.match(text):
        errors.add(column, "is a spreadsheet serial number, not a date-time",
                   "the file was re-saved by a spreadsheet program: export it again from the store")
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z"):
        try:
            return datetime.strptime(text, pattern).isoformat()
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        errors.add(column, f"not a date-time (got {text[:30]!r})", "write it like 2024-03-05 14:22:10 -0500")
        return None
    if parsed.tzinfo is None:
        zone = store_zone(options, column, errors)
        if zone is None:
            return None
        parsed = parsed.replace(tzinfo=zone)
    return parsed.isoformat()


def store_zone(options: ReadOptions, column: str, errors: Errors) -> Any:
    hint = ("give the store's time zone: STORE_TIMEZONE=America/New_York (a setting) or --store-timezone "
            "America/New_York")
    if not options.store_timezone:
        errors.add(column, "has no UTC offset (the export writes the store's local time)", hint)
        return None
    try:
        return ZoneInfo(options.store_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.add(column, f"STORE_TIMEZONE {options.store_timezone[:40]!r} is not a time zone", hint)
        return None


def utc(value: Any) -> str | None:
    """A REST `*_gmt` time (`2024-03-05T19:22:10`, UTC without a zone) as ISO-8601 UTC."""
    text = value.strip() if isinstance(value, str) else ""
    return f"{text}Z" if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", text) else None


def country(value: Any, column: str, errors: Errors) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    code = regions.alpha3(text) if len(text) in (2, 3) else None
    if code is None:
        # The value itself is not shown: it is part of a customer's address.
        errors.add(column, "is not an ISO 3166-1 country code", "export countries as 2-letter codes such as US")
    return code


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """`Ada Example` -> (Ada, Example); one word is a given name. Shopify exports a full name in one cell."""
    parts = (full or "").strip().split(None, 1)
    return (parts[0] if parts else None), (parts[1] if len(parts) > 1 else None)


def address(errors: Errors, column: str, *, line1=None, line2=None, locality=None, region=None, postal_code=None,
            country_code=None, first_name=None, last_name=None) -> dict | None:
    """An address dict (empty parts left out), or None when it has no street, city or country."""
    zip_code = (postal_code or "").strip().removeprefix("'")  # Shopify's guard against Excel dropping zeros
    values = {"first_name": first_name, "last_name": last_name, "line1": line1, "line2": line2,
              "locality": locality, "region": region, "postal_code": None if zip_code in ("", "-") else zip_code,
              "country_code": country(country_code, column, errors)}
    values = {k: v.strip() for k, v in values.items() if isinstance(v, str) and v.strip()}
    if not any(values.get(k) for k in ("line1", "locality", "country_code")):
        return None
    return values


def payment_type(gateways: list[Any], column: str, errors: Errors, options: ReadOptions) -> str | None:
    """The Keap Manual Payment Type for a store gateway, through PAYMENT_METHOD_MAP (a gateway that already is a
    Manual Payment Type stays itself)."""
    names = [g.strip() for g in gateways if isinstance(g, str) and g.strip()]
    for name in names:
        mapped = options.payment_methods.get(name.casefold())
        if mapped:
            return mapped
        same = [t for t in options.manual_payment_types if t.casefold() == name.casefold()]
        if same:
            return same[0]
    if not names:
        errors.add(column, "the paid order names no payment method", "add the gateway to the export")
        return None
    gateway = names[0][:60]
    types = ", ".join(options.manual_payment_types) or "Credit Card (Manual), Cash, Check, ..."
    errors.add(column, f"payment method {gateway!r} has no Keap Manual Payment Type",
               f"map it with the setting PAYMENT_METHOD_MAP, which adds to the built-in map, e.g. "
               f"PAYMENT_METHOD_MAP='{gateway}=Credit Card (Manual)'; several: 'A=Cash;B=Check' (types: {types})")
    return None


def listed(part: dict, key: str) -> list:
    """A list a store's JSON order should hold at `key`; anything else (a damaged or hostile document) is empty."""
    value = part.get(key)
    return value if isinstance(value, list) else []


def line(kind: str, name: str, price: Decimal, **extra: Any) -> dict:
    return {"type": kind, "name": name[:200], "quantity": 1, "unit_price": cents(price), **extra}


def balance(items: list[dict], total: Decimal | None) -> list[dict]:
    """Items plus, when they do not add up to the store's total (tips, duties, rounding of unit prices, shipping
    discounts), one line for the difference, so the Keap order's total is the store's."""
    if total is None or any("unit_price" not in i or "quantity" not in i for i in items):
        return items  # a line without a price is reported by the contract; there is nothing to balance yet
    kept = sum((Decimal(i["unit_price"]) * i["quantity"] * (-1 if i["type"] == "DISCOUNT" else 1) for i in items),
               ZERO)
    difference = total - kept
    if difference > 0:
        items.append(line("FEE", "Adjustment to the store's total", difference))
    elif difference < 0:
        items.append(line("DISCOUNT", "Adjustment to the store's total", -difference))
    return items


def custom_fields(status: str | None, currency: str | None, refunded: Decimal | None) -> dict:
    fields = {STATUS_FIELD: status, CURRENCY_FIELD: currency,
              REFUNDED_FIELD: cents(refunded) if refunded and refunded > 0 else None}
    return {label: value for label, value in fields.items() if value}


def contract(number: tuple[str, ...], email: tuple[str, ...], created: tuple[str, ...], lines: tuple[str, ...],
              total: tuple[str, ...], status: tuple[str, ...], currency: tuple[str, ...], gateway: tuple[str, ...],
              optional: tuple[Column, ...], currency_optional: bool = False) -> Header:
    """The columns (keys) every store layout needs, under that layout's names (WooCommerce's REST order and plugin
    CSVs); a layout whose default fields have no currency column gets a warning instead."""
    money = Column(currency, "money: the currency of every amount",
                   "orders get no 'Currency' custom field (add the column to the export's fields to keep it)")
    return Header(needed=(
        Column(number, "identity: the order number"), Column(email, "identity: the customer Keap finds or creates"),
        Column(created, "the order time"), Column(lines, "lines: SKUs, quantities and prices"),
        Column(total, "money: the order total"), Column(status, "payment state: the order status"),
        Column(gateway, "payment state: the Keap payment type"), *(() if currency_optional else (money,)),
    ), optional=(*optional, *((money,) if currency_optional else ())))


def money_column(names: tuple[str, ...], what: str) -> Column:
    return Column(names, "money", f"{what} become part of one balancing line")
