"""What this Keap account does where the spec is silent, as `keap-orders doctor --probe` found it.

Kept in the ledger (cache "keap-readings"); a reading never probed is None, and the steps then take the path that
is right under every reading. `start_problems` names what no step can work around (the worker refuses to start).
"""
from __future__ import annotations

from worker.ledger import Ledger

CACHE = "keap-readings"
# name -> the values the probe can find (the first is what the sandbox does by default)
VALUES = {
    "email_search": ("case-insensitive", "case-sensitive"),
    "billing_amount_unit": ("currency", "cents"),
    "productless_lines": ("accepted", "refused"),
    "promo_beside_discount_lines": ("ignored", "applied"),
    "payment_list_notes": ("listed", "missing"),
    "subscription_list_custom_fields": ("listed", "missing"),
    "custom_field_filter": ("works", "refused"),
    "create_answer_total": ("present", "missing"),
}


def get(ledger: Ledger, name: str) -> str | None:
    return ledger.cache_get(CACHE, name)


def store(ledger: Ledger, findings: dict[str, str | None]) -> None:
    """Record what the probe found; a reading it could not find out is forgotten (back to unknown)."""
    for name, value in findings.items():
        if value is None:
            ledger.cache_delete(CACHE, name)
        else:
            ledger.cache_set(CACHE, name, value)


def start_problems(ledger: Ledger) -> list[str]:
    """Readings under which no order can be imported safely: a worker must not take work."""
    if get(ledger, "custom_field_filter") == "refused":
        return ["Keap refuses to filter orders by a custom field on this account (found by `keap-orders doctor "
                "--probe`): a lost answer to an order create could not be reconciled, so a retry could create a "
                "second order. Ask Keap support, then run `keap-orders doctor --probe` again"]
    return []
