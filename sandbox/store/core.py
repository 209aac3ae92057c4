"""What every resource of the sandbox's account shares: the lock, the clock, ids, money, errors and listing.

Money is held in cents. Request bodies reach the store already checked against the spec's schemas.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import threading
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from sandbox.query import Field, QueryError, apply_filter, apply_order, paginate, parse_filter

SEED_PATH = Path(__file__).parent.parent / "seed.json"
# Distinct id ranges for kinds without seeds, so a client that mixes two kinds of id up fails in tests.
ID_BASES = {"contact": 1, "product": 1, "plan": 1, "payment_method": 1, "order": 1, "invoice": 10001,
            "item": 20001, "payment": 30001, "invoice_payment": 40001, "subscription": 50001, "custom_field": 1}


class ApiError(Exception):
    """A Keap error answer: HTTP status plus the message of the `Error` body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def cents(value, what: str = "amount") -> int:
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        raise ApiError(400, f"Invalid {what}: {value!r}") from None


def currency(amount_cents: int) -> dict:
    sign = "-" if amount_cents < 0 else ""
    return {"amount": amount_cents, "currency_code": "USD",
            "formatted_amount": f"{sign}${abs(amount_cents) // 100:,}.{abs(amount_cents) % 100:02d}"}


def dollars(amount_cents: int) -> float:
    return amount_cents / 100


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def not_blank(item: dict, names: tuple[str, ...], where: str) -> None:
    for name in names:
        if name in item and not str(item[name]).strip():
            raise ApiError(400, f"Invalid value for {where}{name}: must not be whitespace")


def load_seed(data: str | Path | dict | None) -> dict:
    if isinstance(data, dict):
        return copy.deepcopy(data)
    with open(data or SEED_PATH, encoding="utf-8") as fh:
        return json.load(fh)


class Core:
    """The account's lock, clock and id counters, and the lookup and listing every resource uses."""

    def __init__(self, seed: dict, clock: Callable[[], float], reading: Callable[[str], bool] = lambda name: False):
        self.seed = seed
        self.clock = clock
        self.reading = reading  # which readings of undocumented behaviour are played now (sandbox/readings.py)
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError  # the composed Store loads every resource

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    def _start_ids(self, seeded: dict[str, dict]) -> None:
        """Counters start at their base, or after the highest numeric id seeded for that kind."""
        self._next = dict(ID_BASES)
        for kind, ids in seeded.items():
            self._next[kind] = max([int(i) + 1 for i in ids if str(i).isdigit()] + [ID_BASES[kind]])

    def _new_id(self, kind: str) -> str:
        value = self._next[kind]
        self._next[kind] = value + 1
        return str(value)

    def _get(self, table: dict, record_id: str, what: str) -> dict:
        record = table.get(record_id)
        if record is None:
            raise ApiError(404, f"{what} {record_id} not found")
        return record

    # ------------------------------------------------------------------ generic listing
    @staticmethod
    def _list(records, query: dict, fields: dict[str, Field], order_keys: dict, custom=None, id_key: str = "id"):
        try:
            clauses = parse_filter(query.get("filter"), fields, custom)
            chosen = apply_filter(sorted(records, key=lambda r: int(r[id_key])), clauses)
            chosen = apply_order(chosen, query.get("order_by"), order_keys)
            key = f"{query.get('filter') or ''}|{query.get('order_by') or ''}"
            return paginate(chosen, query.get("page_size"), query.get("page_token"), key)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None

    @staticmethod
    def _page(name: str, items: list, token: str | None) -> dict:
        body = {name: items}
        if token:
            body["next_page_token"] = token
        return body
