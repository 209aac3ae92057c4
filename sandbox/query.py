"""Keap list semantics: `filter=a==1;b==x*`, `order_by=field asc|desc`, `page_size` + opaque `page_token`.

Default page size when none is given: 100 (the spec states no default; unconfirmed for Keap).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_CLAUSE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|>=|<=|>|<)(.*)\Z", re.S)
_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
}


class QueryError(ValueError):
    """A bad filter/order_by/page parameter; answered 400 with this message."""


@dataclass(frozen=True)
class Field:
    """A filterable field: `kind` decides how values compare; `get` returns a value or a list (match any)."""

    kind: str  # text | id | ids | bool | since | until | number | datetime
    get: Callable[[Any], Any]
    ops: frozenset = frozenset({"=="})
    wildcard: bool = False
    case_sensitive: bool = False  # text fields compare ignoring case unless this is set (a reading)


EQ_CMP = frozenset({"==", "!=", ">", "<", ">=", "<="})
CMP = frozenset({"==", ">", "<", ">=", "<="})


def parse_time(value: str, what: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise QueryError(f"Invalid date-time for {what}: {value!r} (use ISO-8601, e.g. 2024-05-21T23:00:00.000Z)") \
            from None
    if parsed.tzinfo is None:
        raise QueryError(f"Invalid date-time for {what}: {value!r} needs a timezone offset (e.g. Z)")
    return parsed


def _as_number(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise QueryError(f"Invalid number for {what}: {value!r}") from None


def _matches(field: Field, name: str, op: str, wanted: str, actual) -> bool:
    if actual is None:
        return False
    if field.kind == "text":
        fold = (lambda v: v) if field.case_sensitive else str.lower  # noqa: E731
        text = fold(str(actual))
        if field.wildcard and wanted.endswith("*"):
            return text.startswith(fold(wanted[:-1]))
        return text == fold(wanted)
    if field.kind == "ids":
        return str(actual) in {part.strip() for part in wanted.split(",")}
    if field.kind == "bool":
        return bool(actual) == (wanted.lower() == "true")
    if field.kind in ("since", "until", "datetime"):
        moment, when = parse_time(wanted, name), parse_time(str(actual), name)
        if field.kind == "since":
            return when >= moment
        if field.kind == "until":
            return when <= moment
        return _COMPARE[op](when, moment)
    if field.kind in ("id", "number"):
        return _COMPARE[op](_as_number(actual, name), _as_number(wanted, name))
    raise AssertionError(field.kind)


def parse_filter(text: str | None, fields: dict[str, Field],
                 custom: Callable[[str], Field | None] | None = None) -> list[tuple[str, Field, str, str]]:
    """Check a filter against the allowed fields; an unknown field or operator is a QueryError."""
    clauses = []
    for raw in (text or "").split(";"):
        if not raw.strip():
            continue
        found = _CLAUSE.match(raw)
        if not found:
            raise QueryError(f"Invalid filter clause {raw!r}: expected field==value (encoded field%3D%3Dvalue)")
        name, op, value = found.groups()
        field = fields.get(name) or (custom(name) if custom else None)
        if field is None:
            allowed = ", ".join(sorted(fields))
            raise QueryError(f"Invalid filter field: {name}. Allowed fields: {allowed}"
                             + (" or a custom field_name" if custom else ""))
        if op not in field.ops:
            raise QueryError(f"Operator {op} is not allowed for filter field {name}; allowed: {sorted(field.ops)}")
        if value.endswith("*") and not field.wildcard:
            raise QueryError(f"Wildcard (*) is not supported for filter field {name}")
        if field.kind == "bool" and value.lower() not in ("true", "false"):
            raise QueryError(f"Invalid boolean for {name}: {value!r} (use true or false)")
        if field.kind in ("since", "until", "datetime"):
            parse_time(value, name)
        if field.kind == "number" or (field.kind == "id" and op != "=="):
            _as_number(value, name)
        clauses.append((name, field, op, value))
    return clauses


def apply_filter(records: Iterable, clauses) -> list:
    def keep(record) -> bool:
        for name, field, op, value in clauses:
            actual = field.get(record)
            values = actual if isinstance(actual, list) else [actual]
            if field.kind == "id" and op == "==":
                if not any(v is not None and str(v) == value for v in values):
                    return False
            elif not any(_matches(field, name, op, value, v) for v in values):
                return False
        return True

    return [record for record in records if keep(record)]


def apply_order(records: list, text: str | None, keys: dict[str, Callable[[Any], Any]]) -> list:
    """`order_by=name asc|desc` (direction optional, asc by default)."""
    if not text:
        return records
    parts = text.replace("+", " ").split()
    if len(parts) not in (1, 2) or parts[0] not in keys or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise QueryError(f"Invalid order_by {text!r}: use one of {sorted(keys)} followed by asc or desc")
    reverse = len(parts) == 2 and parts[1].lower() == "desc"
    return sorted(records, key=lambda r: (keys[parts[0]](r) is None, keys[parts[0]](r) or 0), reverse=reverse)


def _token_digest(query_key: str) -> str:
    return hashlib.sha256(query_key.encode()).hexdigest()[:10]


def paginate(records: list, page_size: str | None, page_token: str | None, query_key: str) -> tuple[list, str | None]:
    """One page plus the opaque token of the next (None when this is the last page)."""
    if page_size in (None, "", "0"):
        size = DEFAULT_PAGE_SIZE
    else:
        try:
            size = int(page_size)
        except ValueError:
            raise QueryError(f"Invalid page_size {page_size!r}: must be an integer from 0 to {MAX_PAGE_SIZE}") \
                from None
        if not 0 <= size <= MAX_PAGE_SIZE:
            raise QueryError(f"Invalid page_size {size}: must be from 0 to {MAX_PAGE_SIZE}")
    offset = 0
    if page_token:
        try:
            raw = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4)).decode()
            offset_text, digest = raw.split(":", 1)
            offset = int(offset_text)
        except (ValueError, UnicodeDecodeError):
            raise QueryError("Invalid page_token") from None
        if digest != _token_digest(query_key):
            raise QueryError("Invalid page_token: it belongs to a different filter or order_by")
    page = records[offset:offset + size]
    end = offset + size
    if end >= len(records):
        return page, None
    token = base64.urlsafe_b64encode(f"{end}:{_token_digest(query_key)}".encode()).decode().rstrip("=")
    return page, token
