"""Stream orders from a CSV file (one row per line item), and write orders in the same layout.

The file must be grouped by order: consecutive rows with the same `external_id` form one order; an
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
import hashlib
import re
from collections.abc import Iterable, Iterator
from datetime import date
from itertools import zip_longest
from pathlib import Path
from typing import Any, TextIO

from producers.sources.jsonl import SourceRow, bad_record
from worker.messages import EXTERNAL_ID_RE, FieldError, Order, OrderInvalid, parse_order

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
_MALFORMED_HINT = "quote cells that contain commas; every row needs one cell per column"
Row = tuple[int, "dict[str, str] | str"]  # (line, filled cells by column) or (line, why the record is not a row)
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class _SeenIds:
    """Constant-memory "did this external_id occur earlier?" for any file size.

    A Bloom filter answers "no" for certain; a "maybe" is confirmed by rescanning the file up to the
    current line, so a false positive never becomes a false error (after many real repeats, the file
    is plainly not grouped and further hits are reported unconfirmed to stay fast).
    """

    BITS = 1 << 26  # 8 MiB: under one false "maybe" expected per million orders
    HASHES = 7
    CONFIRM_LIMIT = 100

    def __init__(self, path: str | Path, id_column: int):
        self._bits = bytearray(self.BITS // 8)
        self._path, self._id_column, self._confirmed = path, id_column, 0

    def earlier_line(self, external_id: str, line: int) -> int | None:
        """The first line before `line` holding `external_id` (0 if unconfirmed), else None; remembers it."""
        digest = hashlib.blake2b(external_id.encode(), digest_size=self.HASHES * 4).digest()
        positions = [int.from_bytes(digest[i:i + 4], "big") % self.BITS for i in range(0, len(digest), 4)]
        maybe = all(self._bits[p >> 3] & (1 << (p & 7)) for p in positions)
        for p in positions:
            self._bits[p >> 3] |= 1 << (p & 7)
        if not maybe:
            return None
        if self._confirmed >= self.CONFIRM_LIMIT:
            return 0
        found = self._scan(external_id, line)
        self._confirmed += found is not None
        return found

    def _scan(self, external_id: str, before: int) -> int | None:
        with open(self._path, newline="", encoding="utf-8-sig") as stream:
            for start, cells in _lines(csv.reader(stream)):
                if start >= before:
                    return None
                if cells is None:
                    return None
                if start > 1 and len(cells) > self._id_column and cells[self._id_column].strip() == external_id:
                    return start
        return None


def _lines(reader: Any) -> Iterator[tuple[int, list[str] | None]]:
    """(first physical line, cells) of each record (quoted cells may span lines); cells None: not UTF-8."""
    end = 0
    try:
        for cells in reader:
            yield end + 1, cells
            end = reader.line_num
    except UnicodeDecodeError:
        yield end + 1, None


def _header_problem(header: list[str]) -> str | None:
    names = [name.strip() for name in header]
    unknown = [n for n in names if n not in COLUMNS and not (n.startswith(CUSTOM_FIELD_PREFIX) and n[3:].strip())]
    if unknown:
        return f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(COLUMNS)}, cf:<Label>"
    if "external_id" not in names:
        return "no external_id column"
    if len(set(names)) != len(names):
        return "a column appears twice"
    return None


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


def _with_lines(error: FieldError, lines: dict[str, list[int]]) -> FieldError:
    match = re.match(r"^(\w+)\[(\d+)\]", error.field)
    if match and match.group(1) in lines and int(match.group(2)) < len(lines[match.group(1)]):
        return FieldError(error.field, f"{error.message} [line {lines[match.group(1)][int(match.group(2))]}]", error.hint)
    return error


def _group_row(
    external_id: str, rows: list[Row], earlier: int | None, order_columns: list[str], today: date | None
) -> SourceRow:
    problems = [FieldError("", f"line {line} {row}", _MALFORMED_HINT) for line, row in rows if isinstance(row, str)]
    if earlier is not None:
        where = f" at line {earlier}" if earlier else ""
        problems.insert(0, FieldError("external_id", f"already used by an earlier order{where}",
                                      "group the file by order: all rows of an order must be consecutive"))
    good = [(line, row) for line, row in rows if isinstance(row, dict)]
    if good:
        data, mismatches, lines = _order_data(good, order_columns)
        problems += mismatches
        try:
            order = parse_order(data, today=today)
        except OrderInvalid as exc:
            problems += [_with_lines(error, lines) for error in exc.errors]
        else:
            if not problems:
                return SourceRow(rows[0][0], order, None, order.external_id)
    known_id = external_id if EXTERNAL_ID_RE.match(external_id) else None
    return SourceRow(rows[0][0], None, OrderInvalid(known_id, problems), known_id)


def read_csv(path: str | Path, *, today: date | None = None) -> Iterator[SourceRow]:
    """Yield one SourceRow per order (group of consecutive rows), in file order, one order in memory at a time.

    A row with the wrong number of cells makes its order (by its external_id cell) an error row.
    """
    with open(path, newline="", encoding="utf-8-sig") as stream:
        records = _lines(csv.reader(stream))
        line, header = next(records, (1, []))
        if header == []:
            return
        problem = _header_problem(header) if header else None
        if header is None or problem:
            yield _not_utf8(line) if header is None else bad_record(1, f"header: {problem}", "fix the header row")
            return
        header = [name.strip() for name in header]
        order_columns = [c for c in header if c in ORDER_LEVEL_COLUMNS or c.startswith(CUSTOM_FIELD_PREFIX)]
        seen = _SeenIds(path, header.index("external_id"))
        for group in _groups(records, header):
            if isinstance(group, SourceRow):
                yield group
            else:
                external_id, rows = group
                earlier = seen.earlier_line(external_id, rows[0][0])
                yield _group_row(external_id, rows, earlier, order_columns, today)


def _groups(
    records: Iterator[tuple[int, list[str] | None]], header: list[str]
) -> Iterator[tuple[str, list[Row]] | SourceRow]:
    """(external_id, consecutive rows with it), or an error row for a record that belongs to no order."""
    id_index = header.index("external_id")
    external_id, group = "", []
    for line, cells in records:
        if cells is None:
            if group:
                yield external_id, group
            yield _not_utf8(line)
            return
        if not "".join(cells).strip():
            continue
        row_id = cells[id_index].strip() if len(cells) > id_index else None
        if group and row_id != external_id:
            yield external_id, group
            group = []
        if len(cells) == len(header):
            # Only the filled cells: exports have many columns and most are empty on most rows.
            group.append((line, {name: cell.strip() for name, cell in zip(header, cells) if cell}))
            external_id = row_id
            continue
        malformed = f"has {len(cells)} cells but the header has {len(header)}"
        if row_id is None:
            yield bad_record(line, malformed, _MALFORMED_HINT)
            continue
        group.append((line, malformed))
        external_id = row_id
    if group:
        yield external_id, group


def _not_utf8(line: int) -> SourceRow:
    # The decoder reads ahead in blocks, so the bad byte is somewhere at or after this line.
    return bad_record(line, "the file is not UTF-8 text from about this line on", "re-export the file as UTF-8")


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
                for column, field in LINE_PARTS[part].items():
                    cells[column] = (entry or {}).get(field)
            writer.writerow({k: ("true" if v is True else "false" if v is False else v) for k, v in cells.items()})
