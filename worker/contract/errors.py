"""Contract errors: `FieldError` (field, what is wrong, how to fix it) and `OrderInvalid`, PII-free by design."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, get_args

from pydantic import BaseModel


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


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The model that holds the last element of an error location (to list its allowed fields)."""
    model = root
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


def field_error(root: type[BaseModel], error: dict) -> FieldError:
    """One pydantic error on `root` (the order model) as a FieldError: its path, what is wrong and the fix."""
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    if ctx.get("field"):
        loc += (ctx["field"],)
    path = _path(loc)
    message = _MESSAGES.get(kind) or error["msg"].replace("Input should be", "must be")
    if kind == "extra_forbidden":
        allowed = ", ".join(_model_at(root, loc).model_fields)
        message = f"unknown field {_short(loc[-1])!r} (allowed: {allowed})"
    if kind in _SHOW_INPUT and not path.startswith("customer"):
        message += f" (got {_shown(error['input'])})"
    last = loc[-1] if loc else ""
    hint = (ctx.get("hint") or (_FIELD_HINTS.get(last) if kind == "missing" else None) or _HINTS.get(kind)
            or "see the order JSON schema (keap-orders schema)")
    return FieldError(path, message, hint)
