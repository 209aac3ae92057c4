"""Keap's wire format: our values to request JSON, CurrencyValue to Decimal, and the `filter` syntax."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

_CENTS = Decimal("0.01")
# Below 10**13 a 2-decimal amount has at most 15 significant digits, so the double Keap parses is the exact cents.
_MAX_MONEY = Decimal(10) ** 13
# ISO 4217 minor units that are not 2 (CurrencyValue.amount is "in the smallest currency unit").
_MINOR_UNITS = {**dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
                **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3)}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")



def to_wire(value: Any) -> Any:
    """Our values → Keap JSON: drop None-valued keys, Decimal → exact-cents number, datetime → ISO-8601 UTC."""
    if isinstance(value, Mapping):
        return {key: to_wire(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, Decimal):
        return _money_number(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a Keap request: give it a time zone (Keap reads ISO-8601 with offset)")
        text = value.astimezone(timezone.utc).isoformat(timespec="milliseconds" if value.microsecond else "seconds")
        return text.replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _money_number(amount: Decimal) -> float:
    if not amount.is_finite() or abs(amount) >= _MAX_MONEY:
        raise ValueError(f"money amount {amount} is not a finite amount below {_MAX_MONEY:,}")
    if amount != amount.quantize(_CENTS):
        raise ValueError(f"money amount {amount} has more than 2 decimals; Keap stores exact cents, round it first")
    return float(amount) + 0.0  # + 0.0 turns -0.0 into 0.0


def cents(amount: Decimal) -> int:
    """A Decimal amount as an integer number of cents (for the fields Keap takes in the smallest unit)."""
    _money_number(amount)  # the same checks as on the wire: finite, at most 2 decimals
    return int(amount.quantize(_CENTS).scaleb(2))


def money(cv: Mapping[str, Any]) -> Decimal:
    """A Keap CurrencyValue ({"amount": smallest units, "currency_code": ...}) as an exact Decimal."""
    amount = cv.get("amount") if isinstance(cv, Mapping) else None
    if isinstance(amount, bool) or not isinstance(amount, (int, str)) or not str(amount).lstrip("-").isdigit():
        raise ValueError(f"not a Keap CurrencyValue with an integer amount: {cv!r}")
    return Decimal(int(amount)).scaleb(-_MINOR_UNITS.get(str(cv.get("currency_code") or "").upper(), 2))


def build_filter(clauses: Mapping[str, Any]) -> str | None:
    """Keap's `filter` parameter: `field==value` clauses joined by `;` (requests URL-encodes it); None if empty.

    Keap documents no escaping, so values that would change the filter's meaning are refused: `;` (clause
    separator), `==` (operator) and a trailing `*` (wildcard — every lookup here is an exact match).
    """
    parts = []
    for field, value in clauses.items():
        if value is None:
            continue
        if not _FIELD.fullmatch(field):
            raise ValueError(f"{field!r} is not a Keap filter field name")
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        # The value itself is not quoted in these messages: it may be an email.
        if not text.strip():
            raise ValueError(f"empty value for Keap filter field {field!r}")
        if ";" in text or "==" in text:
            raise ValueError(f"value for Keap filter field {field!r} contains ';' or '==', which Keap's filter "
                             "syntax cannot escape; such a value cannot be searched for")
        if text.endswith("*"):
            raise ValueError(f"value for Keap filter field {field!r} ends with '*', Keap's wildcard; exact "
                             "lookups cannot search for it")
        parts.append(f"{field}=={text}")
    return ";".join(parts) or None
