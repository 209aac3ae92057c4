"""Readers that turn store exports into validated orders, and the registry that finds a file's format from its
content (the header row or the first JSON document), not from its name."""
from __future__ import annotations

import csv as stdlib_csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from producers.sources import csv, jsonl, shopify, woocommerce
from producers.sources.base import (CHUNK, FileRejected, Format, ReadOptions, SourceRow, count_records, file_encoding,
                                    open_text, read, records_of)

FORMATS: dict[str, Format] = {fmt.name: fmt for fmt in (
    jsonl.FORMAT, csv.FORMAT, shopify.FORMAT, woocommerce.REST, woocommerce.AOE, woocommerce.WEBTOFFEE,
    woocommerce.SKYVERGE, woocommerce.ANALYTICS,
)}
# Keys a WooCommerce REST order has and ours has not.
_STORE_KEYS = {"line_items", "billing", "date_created", "order_key", "payment_method_title"}


@dataclass(frozen=True)
class Head:
    """What detection looks at: the first JSON document (a dict) or the CSV header (stripped names)."""

    json: dict | None = None
    header: frozenset[str] | None = None

    @property
    def store_json(self) -> bool:
        return self.json is not None and len(_STORE_KEYS & set(self.json)) >= 2


def head_of(path: str | Path, options: ReadOptions | None = None) -> Head:
    options = options or ReadOptions()
    with open_text(path, options) as stream:
        text = stream.read(CHUNK).lstrip("\ufeff \t\r\n")
    if text[:1] in "[{" and text:
        start = 1 if text[0] == "[" else 0
        try:
            value, _ = json.JSONDecoder(parse_float=Decimal).raw_decode(text[start:].lstrip())
        except (ValueError, RecursionError):  # cut at CHUNK, or broken: still JSON, of no known kind
            value = {}
        return Head(json=value if isinstance(value, dict) else {})
    first = text.split("\n", 1)[0]
    delimiter = max(csv.DELIMITERS, key=first.count) if any(d in first for d in csv.DELIMITERS) else ","
    try:
        cells = next(stdlib_csv.reader([first], delimiter=delimiter), [])
    except stdlib_csv.Error:
        cells = []
    return Head(header=frozenset(cell.strip().lstrip("\ufeff").strip() for cell in cells))


def detect_format(path: str | Path, fmt: str | None = None, options: ReadOptions | None = None) -> str:
    """The format named, or the one the file's content shows; by suffix when nothing matches (our CSV for .csv,
    else our JSONL), so the reader then explains what is wrong with the file."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    head = head_of(path, options)
    for name, candidate in FORMATS.items():
        if candidate.detect(head):
            return name
    return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"


# Magic numbers of files people rename to .csv or .json by mistake.
_BINARY = {b"%PDF": "a PDF", b"PK\x03\x04": "a ZIP or an Excel workbook (.xlsx)", b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
           b"\x89PNG": "an image", b"\xff\xd8\xff": "an image", b"GIF8": "an image", b"\x1f\x8b": "gzip-compressed"}


def check_file(path: str | Path, fmt: str | None = None, options: ReadOptions | None = None) -> list[str]:
    """Refuse a file no order of which may be imported (FileRejected: empty, not text, not an order export, a needed
    column missing), before any row is read; return one warning per optional column it lacks."""
    options = options or ReadOptions()
    with open(path, "rb") as stream:
        raw = stream.read(CHUNK)
    if not raw.strip(b" \t\r\n\xef\xbb\xbf"):
        raise FileRejected("the file is empty", "export the orders again; nothing was imported")
    kind = next((name for magic, name in _BINARY.items() if raw.startswith(magic)), None)
    if kind or (b"\x00" in raw and not file_encoding(path, options.encoding).startswith("utf-16")
                and not file_encoding(path, options.encoding).startswith("utf-32")):
        raise FileRejected(f"not a text file (it looks like {kind or 'binary data'})",
                           "give the CSV or JSON export itself (in a spreadsheet program: Save As → CSV UTF-8)")
    found = FORMATS[detect_format(path, fmt, options)]
    first = next(records_of(path, found, options), None)  # raises for a header the format cannot read at all
    warnings = []
    if found.header is not None:
        head = head_of(path, options)
        names = head.header if head.header is not None else set(head.json or {})
        warnings = found.header.check(set(names), found.description)
    if first is None:
        raise FileRejected(f"{found.description}: the file holds no orders", "export the orders again; nothing was "
                           "imported")
    return warnings


def read_file(path: str | Path, fmt: str | None = None, options: ReadOptions | None = None) -> Iterator[SourceRow]:
    """Every order of the file, one SourceRow each (see base.read); raises FileRejected first if the file as a whole
    cannot be imported (`check_file`)."""
    options = options or ReadOptions()
    check_file(path, fmt, options)
    return read(path, FORMATS[detect_format(path, fmt, options)], options)


def count_orders(path: str | Path, fmt: str, options: ReadOptions | None = None) -> int:
    """A cheap first pass so progress can show a total: exactly as many as the reader yields rows."""
    return count_records(path, FORMATS[fmt], options or ReadOptions())
