"""CSV files: the reading every CSV format shares (dialect sniffing, bounded records, per-row decoding errors,
rows grouped into orders), and our own CSV layout (one row per line item), read and written.

Our layout must be grouped by order: consecutive rows with the same `external_id` form one order; an
external_id that reappears after another order is an error row for the later group. Empty cell = not given.

Columns (header row required, any order, all optional except `external_id`):
- order, repeated on each row of the order (later rows may leave them empty, but may not differ):
  external_id, order_time, title, order_type, notes, promo_codes (`|`-separated),
  email, given_name, family_name, phone, company,
  billing_<f> and shipping_<f> for f in first_name, last_name, line1, line2, locality, region, postal_code,
  country_code, and `cf:<Label>` for each order custom field (value = text).
- per row, each optional: one item (item_type, sku, item_name, item_description, quantity, unit_price,
  unit_cost), one payment (payment_amount, payment_method, charge_payment_method_id, payment_paid_at,
  payment_external_id, payment_notes) and one subscription (subscription_sku, subscription_billing_cycle,
  subscription_billing_amount, subscription_start_date, subscription_quantity, subscription_auto_charge
  (true/false), subscription_charge_payment_method_id).
"""
from __future__ import annotations

import csv  # the stdlib module: this file is producers.sources.csv, so absolute imports do not shadow it
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import zip_longest
from pathlib import Path
from typing import Any, TextIO

from producers.sources.base import (
    CHUNK, Column, FileRejected, Format, Header, Mapped, Problem, ReadOptions, Record, SourceRow, Unmappable, bounded_lines, oversize, read, undecodable,
    with_options,
)
from worker.contract import FieldError, Order

CUSTOM_FIELD_PREFIX = "cf:"
ORDER_COLUMNS = ("external_id", "order_time", "title", "order_type", "notes", "promo_codes")
CUSTOMER_COLUMNS = ("email", "given_name", "family_name", "phone", "company")
ADDRESS_FIELDS = ("first_name", "last_name", "line1", "line2", "locality", "region", "postal_code", "country_code")
ADDRESSES = ("billing", "shipping")
# CSV column -> model field of the per-row parts of an order.
LINE_PARTS = {
    "items": {"item_type": "type", "sku": "sku", "item_name": "name", "item_description": "description",
              "quantity": "quantity", "unit_price": "unit_price", "unit_cost": "unit_cost"},
    "payments": {"payment_amount": "amount", "payment_method": "method",
                 "charge_payment_method_id": "charge_payment_method_id", "payment_paid_at": "paid_at",
                 "payment_external_id": "external_id", "payment_notes": "notes"},
    "subscriptions": {"subscription_sku": "sku", "subscription_billing_cycle": "billing_cycle",
                      "subscription_billing_amount": "billing_amount", "subscription_start_date": "start_date",
                      "subscription_quantity": "quantity", "subscription_auto_charge": "auto_charge",
                      "subscription_charge_payment_method_id": "charge_payment_method_id"},
}
ADDRESS_COLUMNS = tuple(f"{kind}_{field}" for kind in ADDRESSES for field in ADDRESS_FIELDS)
ORDER_LEVEL_COLUMNS = ORDER_COLUMNS + CUSTOMER_COLUMNS + ADDRESS_COLUMNS
COLUMNS = ORDER_LEVEL_COLUMNS + tuple(column for part in LINE_PARTS.values() for column in part)
_WHOLE = re.compile(r"^\d+$")
_MAX_PROBLEMS = 20
MALFORMED_HINT = "quote cells that contain commas; every row needs one cell per column"
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


# --- reading any CSV ---------------------------------------------------------------------------------------------

DELIMITERS = ",;\t|"
_QUOTED = re.compile(r'"[^"]*"')


def sniff_delimiter(stream: TextIO) -> str:
    """The delimiter that splits the header line into the most cells (Excel writes `;` in many locales); the
    stream is rewound."""
    head = stream.read(CHUNK)
    stream.seek(0)
    first = _QUOTED.sub("", head.split("\n", 1)[0])
    counts = {delimiter: first.count(delimiter) for delimiter in DELIMITERS}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


class _RecordLines:
    """Physical lines for csv.reader, at most `limit` characters per record: the rest of a longer record is
    skipped by counting quotes (so the next record starts where it really does) and the record is flagged."""

    def __init__(self, stream: TextIO, limit: int, quote: str = '"'):
        self._lines = bounded_lines(stream, limit, quote)
        self.limit, self.quote = limit, quote
        self.line = 0  # physical lines read
        self.size = self.quotes = 0  # of the current record, as given to csv
        self.problem: Problem | None = None

    def start_record(self) -> None:
        self.size = self.quotes = 0
        self.problem = None

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        text, dropped = next(self._lines)
        self.line += 1
        allowed = self.limit - self.size
        self.size += len(text)
        if dropped is None and self.size <= self.limit:
            self.quotes += text.count(self.quote)
            return text
        self.problem = oversize(self.limit, "the row")
        total = self.quotes + text.count(self.quote) + (dropped or 0)
        while total % 2:  # still inside a quoted cell: the record goes on
            more = next(self._lines, None)
            if more is None:
                break
            self.line += 1
            total += more[0].count(self.quote) + (more[1] or 0)
        # csv gets what fits (so the row's first cells, such as its order's key, are still read), with the open
        # quote closed, so it ends the record here and starts the next one afresh.
        kept = text[:max(allowed, 0)].rstrip("\r\n")
        return kept + (self.quote if (self.quotes + kept.count(self.quote)) % 2 else "") + "\n"


@dataclass
class TableRow:
    line: int
    cells: list[str] | None  # None: unreadable (too long, not CSV)
    problem: Problem | None = None


def table(stream: TextIO, options: ReadOptions) -> tuple[list[str], Iterator[TableRow]] | Problem | None:
    """(header, rows) of a CSV stream, a Problem for an unreadable header, or None for an empty file."""
    csv.field_size_limit(max(csv.field_size_limit(), options.max_record_chars + 2))
    lines = _RecordLines(stream, options.max_record_chars)
    reader = csv.reader(lines, delimiter=sniff_delimiter(stream), strict=False)
    rows = _rows(reader, lines, stream.encoding, options.max_field_chars, header=None)
    first = next(rows, None)
    if first is None:
        return None
    if first.problem or not first.cells:
        return first.problem or Problem("the header row is empty", "the first row must name the columns")
    header = [cell.strip().lstrip("\ufeff").strip() for cell in first.cells]
    rows = _rows(reader, lines, stream.encoding, options.max_field_chars, header)
    return header, rows


def _rows(reader, lines: _RecordLines, encoding: str, max_field: int, header: list[str] | None) -> Iterator[TableRow]:
    while True:
        lines.start_record()
        start = lines.line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield TableRow(start, None, Problem(f"not valid CSV ({exc})", "export the file again"))
            continue
        if not any(cell.strip() for cell in cells) and not lines.problem:
            continue
        problem = lines.problem or undecodable("\x1f".join(cells), encoding)
        longest = max(range(len(cells)), key=lambda i: len(cells[i]), default=0)
        if not problem and cells and len(cells[longest]) > max_field:
            name = header[longest] if header and longest < len(header) else f"cell {longest + 1}"
            problem = Problem(f"column {name!r} holds {len(cells[longest]):,} characters (at most {max_field:,})",
                              "no order value is that long: check the file")
        yield TableRow(start, cells, problem)
        if header is None:
            return


@dataclass
class RowGroup:
    """Consecutive rows of one order: filled cells by column, and the problems of rows that belong to it."""

    key: str
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[FieldError] = field(default_factory=list)
    size: int = 0

    @property
    def line(self) -> int:
        return self.rows[0][0] if self.rows else 0


MAX_PROBLEMS = 20
MALFORMED_HINT = "quote cells that contain commas; every row needs one cell per column"


def grouped_records(stream: TextIO, options: ReadOptions, key_column: Callable[[list[str]], str | Problem]
                    ) -> Iterator[Record]:
    """Records of a CSV export with one or more rows per order: consecutive rows with the same key cell (the
    column `key_column(header)` names) form one RowGroup; a header that cannot be read, or that `key_column`
    refuses, rejects the file (FileRejected): no row of it could be read right."""
    found = table(stream, options)
    if found is None:
        return
    if isinstance(found, Problem):
        raise FileRejected(f"header: {found.message}", found.hint)
    header, rows = found
    key = key_column(header)
    if isinstance(key, Problem):
        raise FileRejected(key.message, key.hint)
    group: RowGroup | None = None
    first_line = 0
    for row in rows:
        if row.cells is None:
            yield Record(row.line, row.problem)
            continue
        cells = {name: cell.strip() for name, cell in zip(header, row.cells) if cell.strip()}
        row_key = cells.get(key, "")
        problem = row.problem
        if problem is None and len(row.cells) != len(header):
            problem = Problem(f"has {len(row.cells)} cells but the header has {len(header)}", MALFORMED_HINT)
        if not row_key:
            yield Record(row.line, problem or Problem(f"has no {key!r}", f"every row needs the order's {key!r}"))
            continue
        if group is None or row_key != group.key:
            if group is not None:
                yield Record(first_line, group)
            group, first_line = RowGroup(row_key), row.line
        if problem:
            if len(group.problems) < MAX_PROBLEMS:  # an order's report stays readable (and memory bounded)
                group.problems.append(FieldError(problem.field, f"line {row.line} {problem.message}", problem.hint))
            continue
        group.size += sum(map(len, cells.values()))
        if group.size > options.max_record_chars:
            if group.rows:
                group.rows.clear()  # keep memory bounded: the order is reported, not imported
                group.problems.append(FieldError("", oversize(options.max_record_chars, "the order's rows").message,
                                                 "no order is that big: check the file"))
            continue
        group.rows.append((row.line, cells))
    if group is not None:
        yield Record(first_line, group)


# --- our CSV layout -------------------------------------------------------------------------------------------------


def _header_problem(header: list[str]) -> str | Problem:
    names = header
    unknown = [n for n in names if n not in COLUMNS and not (n.startswith(CUSTOM_FIELD_PREFIX) and n[3:].strip())]
    if len(unknown) > 5:
        # Not a misspelt column or two: another kind of file. Listing our 49 columns would not help.
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        return Problem(f"header: unknown column(s) {shown} and {len(unknown) - 5} more: neither keap-orders CSV nor a "
                       "store export this tool recognises", "see `keap-orders backfill --help` for the formats read, "
                       "and producers/sources/csv.py for keap-orders CSV columns")
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown)
        return Problem(f"header: unknown column(s) {shown}; allowed: {', '.join(COLUMNS)}, cf:<Label>",
                       "fix the header row, or give the file's --format if it is a store export")
    if "external_id" not in names:
        return Problem("header: no external_id column", "fix the header row")
    if len(set(names)) != len(names):
        return Problem("header: a column appears twice", "fix the header row")
    return "external_id"


def _value(column: str, cell: str) -> Any:
    # CSV has only text: whole numbers and booleans are typed here, anything odd is left to the model to reject.
    if column in ("quantity", "subscription_quantity") and _WHOLE.match(cell):
        return int(cell)
    if column == "subscription_auto_charge":
        return _BOOLEANS.get(cell.lower(), cell)
    return cell


def _order_data(
    rows: list[tuple[int, dict[str, str]]], order_columns: list[str]
) -> tuple[dict, list[FieldError], dict[str, list[int]]]:
    """The order dict of one group, rows whose order cells contradict the first row, and each line part's line."""
    first_line, first = rows[0]
    problems = [
        FieldError(column, f"line {line} differs from line {first_line}, the order's first line",
                   "repeat the same order values on every row of an order, or leave them empty")
        for line, row in rows[1:]
        for column in order_columns
        if row.get(column) and row[column] != first.get(column)
    ]
    data: dict[str, Any] = {c: first[c] for c in ORDER_COLUMNS if first.get(c)}
    if "promo_codes" in data:
        data["promo_codes"] = [code.strip() for code in data["promo_codes"].split("|") if code.strip()]
    customer: dict[str, Any] = {c: first[c] for c in CUSTOMER_COLUMNS if first.get(c)}
    for kind in ADDRESSES:
        address = {f: first[f"{kind}_{f}"] for f in ADDRESS_FIELDS if first.get(f"{kind}_{f}")}
        if address:
            customer[f"{kind}_address"] = address
    if customer:
        data["customer"] = customer
    custom = {c[len(CUSTOM_FIELD_PREFIX):]: v for c, v in first.items() if c.startswith(CUSTOM_FIELD_PREFIX) and v}
    if custom:
        data["custom_fields"] = custom
    lines: dict[str, list[int]] = {part: [] for part in LINE_PARTS}
    for line, row in rows:
        for part, columns in LINE_PARTS.items():
            entry = {field: _value(column, row[column]) for column, field in columns.items() if row.get(column)}
            if entry:
                data.setdefault(part, []).append(entry)
                lines[part].append(line)
    return data, problems, lines


def _our_order(group: RowGroup, options: ReadOptions) -> dict:
    if not group.rows:
        raise Unmappable(group.problems)
    order_columns = sorted({c for _, row in group.rows for c in row
                            if c in ORDER_LEVEL_COLUMNS or c.startswith(CUSTOM_FIELD_PREFIX)})
    data, mismatches, lines = _order_data(group.rows, order_columns)
    data["external_id"] = _our_external_id(group, options)
    mapped = Mapped(data, lines)
    if group.problems or mismatches:
        raise Unmappable(group.problems + mismatches, mapped)
    return mapped


def _our_external_id(group: RowGroup, options: ReadOptions) -> str:
    return f"{options.prefix('')}{group.key}"


def _is_our_csv(head: Any) -> bool:
    return head.header is not None and "external_id" in head.header


def _our_records(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
    return grouped_records(stream, options, _header_problem)


# external_id is checked with the header's other rules (_header_problem); the rest of our columns are optional by
# design, and each order is checked against the contract.
FORMAT = Format("csv", "keap-orders CSV: one row per line item, columns as in producers/sources/csv.py",
                _our_records, _our_order, _our_external_id, _is_our_csv,
                header=Header(needed=(Column(("email",), "identity: the customer Keap finds or creates"),)))


def read_csv(path: str | Path, *, today: date | None = None, options: ReadOptions | None = None) -> Iterator[SourceRow]:
    """Yield one SourceRow per order (group of consecutive rows), in file order, one order in memory at a time.

    A row with the wrong number of cells makes its order (by its external_id cell) an error row.
    """
    return read(path, FORMAT, with_options(options, today))


def _row_cells(order: dict, labels: Iterable[str]) -> dict[str, Any]:
    customer = order["customer"]
    cells: dict[str, Any] = {c: order.get(c) for c in ORDER_COLUMNS} | {c: customer.get(c) for c in CUSTOMER_COLUMNS}
    cells["promo_codes"] = "|".join(order["promo_codes"])
    for kind in ADDRESSES:
        address = customer.get(f"{kind}_address") or {}
        cells |= {f"{kind}_{f}": address.get(f) for f in ADDRESS_FIELDS}
    for label in labels:
        cells[CUSTOM_FIELD_PREFIX + label] = order["custom_fields"].get(label)
    return cells


def write_csv(orders: Iterable[Order], stream: TextIO, *, custom_field_labels: Iterable[str] = ()) -> None:
    """Write orders in the layout read_csv reads (the header lists `cf:<Label>` for each label given)."""
    labels = list(custom_field_labels)
    writer = csv.DictWriter(stream, [*COLUMNS, *(CUSTOM_FIELD_PREFIX + label for label in labels)])
    writer.writeheader()
    for order in orders:
        data = order.model_dump(mode="json")
        unknown = set(data["custom_fields"]) - set(labels)
        if unknown:
            raise ValueError(f"order {order.external_id}: custom field(s) {sorted(unknown)} not in custom_field_labels")
        order_cells = _row_cells(data, labels)
        for parts in zip_longest(*(data[part] for part in LINE_PARTS)):
            cells = dict(order_cells)
            for part, entry in zip(LINE_PARTS, parts):
                for column, name in LINE_PARTS[part].items():
                    cells[column] = (entry or {}).get(name)
            writer.writerow({k: ("true" if v is True else "false" if v is False else v) for k, v in cells.items()})
