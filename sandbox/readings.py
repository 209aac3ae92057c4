"""Readings: where Keap's spec is silent the sandbox follows one reading, and each switch here plays another one.

`--reading a,b` (python -m sandbox, keap-orders sandbox), `Sandbox(readings=[...])`, or `{"readings": [...]}` on
`POST /__sandbox__/faults`. The default (no switch) is the reading the sandbox documents in docs/sandbox.md.
"""
from __future__ import annotations

READINGS = {
    "decline-words": "a declined stored-card charge is answered 'Do Not Honor' (default: 'DECLINED')",
    "billing-cents": "a subscription's billing_amount is read and answered in cents (default: currency units)",
    "email-case-sensitive": "the contact search email== is case-sensitive (default: case-insensitive)",
    "no-notes": "payment lists come back without `note` (default: the note is listed)",
    "no-productless-lines": "order lines without a product_id are refused with 400 (default: accepted)",
    "promo-applied": "promo codes apply on top of explicit DISCOUNT lines (default: ignored beside them)",
    "no-subscription-fields": "subscription lists come back without custom_fields (default: listed)",
    "no-create-total": "the answer to creating an order carries no `total` (default: it does)",
    "no-custom-field-filter": "filtering orders by a custom field is refused with 400 (default: supported)",
}


def parse_readings(value) -> frozenset[str]:
    """A list or a comma-separated text of reading names; an unknown name is a ValueError naming the known ones."""
    if value is None:
        return frozenset()
    names = [part.strip() for part in (value.split(",") if isinstance(value, str) else value) if str(part).strip()]
    unknown = [name for name in names if name not in READINGS]
    if unknown or not all(isinstance(name, str) for name in names):
        raise ValueError(f"unknown reading(s) {unknown}; known: {', '.join(READINGS)}")
    return frozenset(names)
