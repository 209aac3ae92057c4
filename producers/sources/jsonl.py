"""Stream orders from a JSON Lines file: one order object per line, blank lines skipped, bad lines reported.

JSON numbers are read as Decimal, so a price written as 19.9 becomes exactly 19.90.
"""
from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from worker.messages import FieldError, Order, OrderInvalid, parse_order


@dataclass(frozen=True)
class SourceRow:
    """One order read from a file: either `order` or `error` is set."""

    line: int  # 1-based; for CSV the first line of the order
    order: Order | None
    error: OrderInvalid | None
    external_id: str | None


def source_row(line: int, data: Any, *, today: date | None = None) -> SourceRow:
    """Validate one decoded order into a SourceRow (never raises for bad data)."""
    try:
        order = parse_order(data, today=today)
    except OrderInvalid as exc:
        return SourceRow(line, None, exc, exc.external_id)
    return SourceRow(line, order, None, order.external_id)


def bad_record(line: int, message: str, hint: str) -> SourceRow:
    """A row for a record that could not even be decoded, so no order fields are known."""
    return SourceRow(line, None, OrderInvalid(None, [FieldError("", message, hint)]), None)


def read_jsonl(path: str | Path, *, today: date | None = None) -> Iterator[SourceRow]:
    """Yield one SourceRow per non-blank line, in file order, reading one line at a time."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"), parse_float=Decimal)
            except UnicodeDecodeError as exc:
                yield bad_record(number, f"not UTF-8 text (byte {exc.start + 1})", "save the file as UTF-8")
            except json.JSONDecodeError as exc:
                yield bad_record(number, f"not valid JSON: {exc.msg} at column {exc.colno}",
                                 "fix the line: one complete JSON object per line")
            else:
                yield source_row(number, data, today=today)
