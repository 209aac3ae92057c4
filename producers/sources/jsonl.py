"""JSON orders: our JSON Lines format (one order object per line), and the streaming of JSON documents that
woocommerce.py reads too — one per line, a top-level array, or pretty-printed objects one after another.

JSON numbers are read as Decimal, so a price written as 19.9 becomes exactly 19.90. Every document is decoded
on its own: a broken line, a bad byte, a too-deep nesting or a too-long number costs that document only.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

# SourceRow, source_row and bad_record moved to base.py; they are re-exported for older imports.
from producers.sources.base import (  # noqa: F401
    CHUNK, Format, Problem, ReadOptions, Record, SourceRow, bad_record, bounded_lines, oversize, read, source_row,
    undecodable, with_options,
)

_DECODER = json.JSONDecoder(parse_float=Decimal)
_NOT_JSON_HINT = "fix the line: one complete JSON object per line"
_SPACE = re.compile(r"\s*")


def first_char(stream: TextIO) -> tuple[str, str]:
    """(first non-blank character, the first line's text stripped) of a stream, which is rewound."""
    head = stream.read(CHUNK)
    stream.seek(0)
    text = head.lstrip("\ufeff \t\r\n")
    return (text[:1], text.split("\n", 1)[0].strip())


def json_records(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
    """One Record per JSON document: its decoded value, or a Problem."""
    char, first_line = first_char(stream)
    # A first line that does not close its object starts pretty-printed JSON; JSON Lines has one per line.
    if char == "[" or (char == "{" and not first_line.endswith("}")):
        yield from _documents(stream, options)
    else:
        yield from _lines(stream, options)


def _decode(text: str) -> Any:
    """The JSON value of `text`, or a Problem (never raises: deep nesting and huge numbers are Problems too)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        return Problem(f"not valid JSON: {exc.msg} at column {exc.colno}", _NOT_JSON_HINT)
    except RecursionError:
        return Problem("JSON nested too deeply", "an order is a JSON object with lists of items, not deeper")
    except ValueError:  # a number of thousands of digits (Python refuses to convert it)
        return Problem("a JSON number has thousands of digits", "amounts and ids are short numbers")


def _lines(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
    encoding = stream.encoding
    for number, (line, cut) in enumerate(bounded_lines(stream, options.max_record_chars), start=1):
        if number == 1:
            line = line.removeprefix("\ufeff")
        if cut is not None:
            yield Record(number, oversize(options.max_record_chars, "the line"))
        elif line.strip():
            yield Record(number, undecodable(line, encoding) or _decode(line))


def _documents(stream: TextIO, options: ReadOptions) -> Iterator[Record]:
    """JSON values one after another, each optionally inside top-level arrays: `[{..},{..}]`, `{..}\n{..}`."""
    buffer, pos, line, depth, eof = "", 0, 1, 0, False
    limit = options.max_record_chars

    def more() -> bool:
        nonlocal buffer, pos, eof
        chunk = stream.read(CHUNK)
        buffer, pos, eof = buffer[pos:] + chunk, 0, not chunk
        return bool(chunk)

    def skip_space() -> None:
        nonlocal pos, line
        while True:
            end = _SPACE.match(buffer, pos).end()
            line += buffer.count("\n", pos, end)
            pos = end
            if pos < len(buffer) or not more():
                return

    while True:
        skip_space()
        if pos >= len(buffer):
            if depth:
                yield Record(line, Problem("the JSON array is not closed", "end the file with ]"))
            return
        char = buffer[pos]
        if char == "\ufeff" or (char == "," and depth):
            pos += 1
            continue
        if char in "[]" and (char == "[" or depth):
            depth += 1 if char == "[" else -1
            pos += 1
            continue
        start = line
        while True:
            try:
                value, end = _DECODER.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if not eof and len(buffer) - pos <= limit:
                    more()
                    continue
                problem = (oversize(limit, "the JSON document") if len(buffer) - pos > limit
                           else Problem(f"not valid JSON: {exc.msg}", "fix the document, or export the file again"))
            except (RecursionError, ValueError):
                problem = _decode(buffer[pos:pos + limit])
                if not isinstance(problem, Problem):
                    problem = Problem("not valid JSON", "fix the document, or export the file again")
            else:
                problem = undecodable(buffer[pos:end], stream.encoding)
                if end - pos > limit:
                    problem = oversize(limit, "the JSON document")
                line += buffer.count("\n", pos, end)
                pos = end
                yield Record(start, problem or value)
                break
            # A broken document: skip to where it ends (brackets balance outside strings) and go on after it.
            skipped = _skip_document(buffer, pos, more_text=lambda: stream.read(CHUNK))
            yield Record(start, problem)
            if skipped is None:
                return
            buffer, pos, newlines = skipped
            line += newlines
            break


def _skip_document(buffer: str, pos: int, more_text) -> tuple[str, int, int] | None:
    """(buffer, position after the JSON value starting at pos, newlines passed), reading on with `more_text`;
    None when the file ends first. Constant memory: passed text is dropped."""
    depth, in_string, escaped, newlines, start = 0, False, False, 0, pos
    while True:
        for index in range(pos, len(buffer)):
            char = buffer[index]
            if char == "\n":
                newlines += 1
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth <= 0:
                    return buffer, index + 1, newlines
            elif depth == 0 and char in ",\n" and index > start:
                return buffer, index, newlines  # a broken scalar ends at the next separator
        buffer, pos, start = more_text(), 0, -1
        if not buffer:
            return None


# --- our JSONL format ---------------------------------------------------------------------------------------------


def _our_order(data: Any, options: ReadOptions) -> Any:
    prefix = options.prefix("")
    if prefix and isinstance(data, dict) and isinstance(data.get("external_id"), (str, int)):
        data["external_id"] = f"{prefix}{data['external_id']}"
    return data


def _our_external_id(data: Any, options: ReadOptions) -> str | None:
    value = data.get("external_id") if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**100:
        value = str(value)
    return f"{options.prefix('')}{value}" if isinstance(value, str) and value else None


def _is_our_json(head: Any) -> bool:
    return head.json is not None and not head.store_json


FORMAT = Format("jsonl", "keap-orders JSON: one order object per line (see `keap-orders schema`)", json_records,
                _our_order, _our_external_id, _is_our_json)


def read_jsonl(path: str | Path, *, today: date | None = None, options: ReadOptions | None = None) -> Iterator[SourceRow]:
    """Yield one SourceRow per non-blank line, in file order, reading one line at a time."""
    return read(path, FORMAT, with_options(options, today))
