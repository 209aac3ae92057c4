"""The reader contract: a format turns a text stream into records (one order's raw data, or a Problem), and a
record into an order dict; `read()` does the rest alike for every format — per-record decoding errors, size
limits, duplicate ids, the missing-email policy and validation — so every record becomes exactly one SourceRow.
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from worker.contract import MAX_TEXT, FieldError, Order, OrderInvalid, parse_order

CHUNK = 1 << 16
MAX_RECORD_CHARS = 1_000_000  # one order, all its rows: a thousand lines of 1,000 characters; more is not an order


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


def bad_record(line: int, message: str, hint: str, external_id: str | None = None) -> SourceRow:
    """A row for a record that could not even be decoded, so no order fields are known."""
    return SourceRow(line, None, OrderInvalid(external_id, [FieldError("", message, hint)]), external_id)


@dataclass(frozen=True)
class Problem:
    """Why a record is no order (not decodable, too big, malformed), and the fix; `field` names its column."""

    message: str
    hint: str
    field: str = ""


@dataclass(frozen=True)
class Record:
    line: int  # first physical line of the record
    data: Any  # the format's raw data of one order, or a Problem


class Unmappable(Exception):
    """Raised by a format's mapping: the record's values cannot become an order (errors say which and why).
    With `data`, what could be mapped is still validated, so every error of the order is reported at once."""

    def __init__(self, errors: list[FieldError], data: dict | None = None):
        super().__init__(errors)
        self.errors, self.data = errors, data


class Mapped(dict):
    """An order dict that knows the source line of each entry of its lists (items, payments, subscriptions), so
    an error such as `items[2].unit_price` also names its line."""

    def __init__(self, data: dict, lines: dict[str, list[int]]):
        super().__init__(data)
        self.lines = lines

    def located(self, error: FieldError) -> FieldError:
        match = re.match(r"^(\w+)\[(\d+)\]", error.field)
        lines = self.lines.get(match.group(1), []) if match else []
        if match and int(match.group(2)) < len(lines):
            return FieldError(error.field, f"{error.message} [line {lines[int(match.group(2))]}]", error.hint)
        return error


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file; `from_settings()` fills the defaults from worker/settings.py."""

    today: date | None = None
    encoding: str | None = None  # None: a BOM decides, else UTF-8
    id_prefix: str | None = None  # None: the format family's prefix from id_prefixes
    id_prefixes: Mapping[str, str] = field(default_factory=dict)  # "shopify" -> "shopify:"
    payment_methods: Mapping[str, str] = field(default_factory=dict)  # store gateway (casefolded) -> Keap type
    manual_payment_types: tuple[str, ...] = ()
    missing_email_placeholder: str | None = None  # e.g. "order-{external_id}@no-email.invalid"
    store_timezone: str | None = None  # IANA name for exports whose times have no offset
    max_record_chars: int = MAX_RECORD_CHARS
    max_field_chars: int = MAX_TEXT

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> ReadOptions:
        if settings is None:
            from worker.settings import get_settings

            settings = get_settings()
        values = {
            "id_prefixes": {"shopify": settings.shopify_id_prefix, "woocommerce": settings.woocommerce_id_prefix},
            "payment_methods": parse_payment_map(settings.payment_method_map, parse_payment_map(DEFAULT_PAYMENT_METHODS)),
            "manual_payment_types": tuple(t.strip() for t in settings.manual_payment_types.split(",") if t.strip()),
            "missing_email_placeholder": settings.missing_email_placeholder or None,
            "store_timezone": settings.store_timezone or None,
        }
        return cls(**(values | {k: v for k, v in overrides.items() if v is not None}))

    def prefix(self, family: str) -> str:
        return self.id_prefix if self.id_prefix is not None else self.id_prefixes.get(family, "")


# The gateways common stores write, mapped to Keap's default Manual Payment Types; PAYMENT_METHOD_MAP adds to it.
DEFAULT_PAYMENT_METHODS = ("Shopify Payments=Credit Card (Manual);Credit card (Stripe)=Credit Card (Manual);"
                           "stripe=Credit Card (Manual);Cash on Delivery (COD)=Cash;Cash on delivery=Cash;cod=Cash;"
                           "Check payments=Check;cheque=Check")


def parse_payment_map(text: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """'Shopify Payments=Credit Card (Manual);cod=Cash' -> {gateway casefolded: Keap manual payment type}, on top of
    `base`; 'Gateway=' (no type) removes that gateway from it."""
    found = dict(base or {})
    for gateway, keap in (entry.split("=", 1) for entry in text.split(";") if "=" in entry):
        if gateway.strip():
            found[gateway.strip().casefold()] = keap.strip()
    return {gateway: keap for gateway, keap in found.items() if keap}


class FileRejected(Exception):
    """The file as a whole cannot be imported (empty, not an order export, a needed column missing): no order of it
    is read, so none goes in wrong."""

    def __init__(self, message: str, hint: str):
        super().__init__(message, hint)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}"


@dataclass(frozen=True)
class Column:
    """A column (CSV header) or key (JSON) a format reads; any one of `names` will do."""

    names: tuple[str, ...]
    carries: str  # what it holds for the order: identity, money, payment state, lines, customer...
    absent: str = ""  # for a column a format can do without: what every order read without it lacks

    def found_in(self, header: set[str]) -> bool:
        return any(name in header for name in self.names)

    @property
    def shown(self) -> str:
        return " or ".join(repr(name) for name in self.names)


@dataclass(frozen=True)
class Header:
    """A format's header contract: without a needed column the file is refused by name before any row is read (an
    order read without it would go into Keap wrong: unpaid, without its currency, under no customer); without an
    optional one, one warning says what every order will lack."""

    needed: tuple[Column, ...] = ()
    optional: tuple[Column, ...] = ()

    def check(self, header: set[str], what: str) -> list[str]:
        """Raise FileRejected naming every missing needed column; return one warning per missing optional one."""
        missing = [column for column in self.needed if not column.found_in(header)]
        if missing:
            named = "; ".join(f"{column.shown} ({column.carries})" for column in missing)
            raise FileRejected(f"{what}: needed column(s) missing: {named}",
                               "export the file again with every column (a spreadsheet edit may have removed it), "
                               "or restore the column; nothing was imported")
        return [f"{what}: no {column.shown} column: {column.absent}"
                for column in self.optional if not column.found_in(header)]


@dataclass(frozen=True)
class Format:
    """One file format: how its records are read, mapped to an order dict, and keyed."""

    name: str
    description: str
    records: Callable[[TextIO, ReadOptions], Iterator[Record]]
    to_order: Callable[[Any, ReadOptions], dict]  # raises Unmappable
    external_id: Callable[[Any, ReadOptions], str | None]  # cheap: used again to confirm duplicates
    detect: Callable[[Any], bool]  # given the file's Head (see the registry)
    family: str = ""  # whose id prefix applies
    header: Header | None = None  # the columns (CSV) or keys of the first document (JSON) it needs


# --- decoding --------------------------------------------------------------------------------------------------

_MARK = "keap-orders-mark"


def _mark_undecodable(exc: UnicodeDecodeError) -> tuple[str, int]:
    # Bad bytes become lone surrogates U+DC00+byte, which no decoder yields for valid input: each record can then
    # tell whether it holds undecodable bytes, and every other record of the file is still read.
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error(_MARK, _mark_undecodable)
_UNDECODED = re.compile("[\udc00-\udcff]")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def file_encoding(path: str | Path, encoding: str | None) -> str:
    """A BOM decides (it cannot be wrong); else the encoding asked for; else UTF-16 without a BOM when every
    other byte of the start is zero; else UTF-8."""
    with open(path, "rb") as stream:
        head = stream.read(4096)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if encoding:
        return encoding
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4 and not head[0::2].count(0):
        return "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4 and not head[1::2].count(0):
        return "utf-16-be"
    return "utf-8"


def open_text(path: str | Path, options: ReadOptions) -> TextIO:
    """The file as text, newlines kept as written; undecodable bytes are marked for `undecodable()`."""
    encoding = file_encoding(path, options.encoding)
    stream = open(path, encoding=encoding, errors=_MARK, newline="")
    return stream


def undecodable(text: str, encoding: str) -> Problem | None:
    """A Problem naming the first undecodable byte of `text`, or None if it was all decoded."""
    found = _UNDECODED.search(text)
    if not found:
        return None
    byte = ord(found.group()) - 0xDC00
    name = codecs.lookup(encoding).name.removesuffix("-sig")
    name = name.upper() if name.startswith("utf") else name
    return Problem(f"not valid {name} text (byte 0x{byte:02X} at character {found.start() + 1})",
                   "re-export the file as UTF-8, or give its encoding with --encoding (e.g. cp1252)")


def oversize(limit: int, what: str = "the record") -> Problem:
    return Problem(f"{what} is longer than {limit:,} characters",
                   "no order is that big: check that the file is an order export and not damaged")


def bounded_lines(stream: TextIO, limit: int, count: str = '"') -> Iterator[tuple[str, int | None]]:
    """(line, cut) for each physical line: `cut` is None, or for a line over `limit` characters, cut there, how many
    `count` characters the skipped rest held (it is read in chunks: memory stays bounded whatever the file holds)."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(("\n", "\r")):
            yield line, None
            continue
        dropped = line[limit:].count(count)
        while True:
            rest = stream.readline(CHUNK)
            dropped += rest.count(count)
            if not rest or rest.endswith(("\n", "\r")):
                break
        yield line[:limit], dropped


# --- duplicate ids ------------------------------------------------------------------------------------------------


class SeenIds:
    """Constant-memory "did this external_id occur earlier in the file?" for any file size.

    A Bloom filter answers "no" for certain; a "maybe" is confirmed by rereading the file's ids up to the current
    line (`rescan`), so a false positive never becomes a false error (after many real repeats, the file is plainly
    not grouped and further hits are reported unconfirmed to stay fast).
    """

    BITS = 1 << 26  # 8 MiB: under one false "maybe" expected per million orders
    HASHES = 7
    CONFIRM_LIMIT = 100

    def __init__(self, rescan: Callable[[], Iterator[tuple[int, str | None]]]):
        self._bits = bytearray(self.BITS // 8)
        self._rescan, self._confirmed = rescan, 0

    def earlier_line(self, external_id: str, position: int) -> int | None:
        """The line of the first record before the `position`-th (0-based) holding `external_id` (0 if
        unconfirmed), else None; remembers it. Positions, not lines: a JSON array may hold every order on line 1."""
        digest = hashlib.blake2b(external_id.encode("utf-8", "surrogatepass"), digest_size=self.HASHES * 4).digest()
        positions = [int.from_bytes(digest[i:i + 4], "big") % self.BITS for i in range(0, len(digest), 4)]
        maybe = all(self._bits[p >> 3] & (1 << (p & 7)) for p in positions)
        for p in positions:
            self._bits[p >> 3] |= 1 << (p & 7)
        if not maybe:
            return None
        if self._confirmed >= self.CONFIRM_LIMIT:
            return 0
        earlier = itertools.islice(self._rescan(), position)
        found = next((line for line, other in earlier if other == external_id), None)
        self._confirmed += found is not None
        return found


# --- the pipeline ----------------------------------------------------------------------------------------------------


def records_of(path: str | Path, fmt: Format, options: ReadOptions) -> Iterator[Record]:
    with open_text(path, options) as stream:
        yield from fmt.records(stream, options)


def count_records(path: str | Path, fmt: Format, options: ReadOptions) -> int:
    """How many SourceRows read() will yield: one per record (no validation, so it is cheap)."""
    return sum(1 for _ in records_of(path, fmt, options))


def _safe_id(fmt: Format, data: Any, options: ReadOptions) -> str | None:
    return None if isinstance(data, Problem) else fmt.external_id(data, options)


def read(path: str | Path, fmt: Format, options: ReadOptions | None = None) -> Iterator[SourceRow]:
    """One SourceRow per record, in file order, one order in memory at a time."""
    options = options or ReadOptions()

    def ids() -> Iterator[tuple[int, str | None]]:
        for record in records_of(path, fmt, options):
            yield record.line, _safe_id(fmt, record.data, options)

    seen = SeenIds(ids)
    for position, record in enumerate(records_of(path, fmt, options)):
        external_id = _safe_id(fmt, record.data, options)
        earlier = seen.earlier_line(external_id, position) if external_id else None
        yield _row(record, fmt, options, external_id, earlier)


def _row(record: Record, fmt: Format, options: ReadOptions, external_id: str | None, earlier: int | None) -> SourceRow:
    if isinstance(record.data, Problem):
        return bad_record(record.line, record.data.message, record.data.hint)
    problems: list[FieldError] = []
    if earlier is not None:
        where = f" at line {earlier}" if earlier else ""
        problems.append(FieldError("external_id", f"already used by an earlier order{where}",
                                   "each order may appear once in a file: keep the rows of an order together and "
                                   "remove repeated orders"))
    try:
        data = fmt.to_order(record.data, options)
    except Unmappable as exc:
        problems += exc.errors
        data = exc.data
    except RecursionError:
        problems.append(FieldError("", "nested too deeply", "an order is a flat JSON object with lists of items"))
        data = None
    if data is not None:
        problems += _apply_email_policy(data, options)
        try:
            order = parse_order(data, today=options.today)
        except OrderInvalid as exc:
            reported = {error.field for error in problems}
            located = data.located if isinstance(data, Mapped) else (lambda error: error)
            # A value the mapping could not read is left out: its "is required" would only repeat the mapping's error.
            problems += [located(error) for error in exc.errors
                         if error.field not in reported and not (problems and error.message == "is required")]
        except RecursionError:
            problems.append(FieldError("", "nested too deeply", "an order is a flat JSON object with lists of items"))
        else:
            if not problems:
                return SourceRow(record.line, order, None, order.external_id)
    return SourceRow(record.line, None, OrderInvalid(external_id, problems), external_id)


def _apply_email_policy(data: Any, options: ReadOptions) -> list[FieldError]:
    """An order without an email is an error unless MISSING_EMAIL_PLACEHOLDER says which address to use."""
    customer = data.get("customer") if isinstance(data, dict) else None
    email = customer.get("email") if isinstance(customer, dict) else 0
    if not (email is None or isinstance(email, str) and not email.strip()):
        return []  # given (the contract checks it), or no customer object at all (the contract says so)
    if options.missing_email_placeholder:
        external_id = data.get("external_id")
        safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", str(external_id) if isinstance(external_id, (str, int)) else "")
        customer["email"] = options.missing_email_placeholder.format(external_id=safe.strip("-.") or "unknown")
        return []
    return [FieldError("customer.email", "the order has no email address",
                       "Keap finds and creates contacts by email: add it, or set MISSING_EMAIL_PLACEHOLDER "
                       "(e.g. order-{external_id}@no-email.invalid) to import such orders under a placeholder")]


def with_options(options: ReadOptions | None, today: date | None) -> ReadOptions:
    """The options a reader was given, with `today` (the older keyword) applied."""
    options = options or ReadOptions()
    return replace(options, today=today) if today is not None else options
