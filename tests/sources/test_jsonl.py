"""JSONL reader: one order per line, blank lines skipped, bad lines become error rows with line numbers."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from producers.sources.jsonl import read_jsonl

TODAY = date(2026, 11, 26)


def order(external_id: str, **changes) -> dict:
    return {"external_id": external_id, "order_time": "2024-01-02T03:04:05Z", "customer": {"email": "x@example.com"},
            "items": [{"sku": "MUG-CLASSIC", "unit_price": "12.50"}], **changes}


def write(tmp_path: Path, lines: list[str], name: str = "orders.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_valid_invalid_and_broken_lines_with_line_numbers(tmp_path):
    path = write(tmp_path, [
        json.dumps(order("a-1")),
        "",
        "   ",
        '{"external_id": "a-2", "order_time": ',
        json.dumps(order("a-3", items=[{"sku": "X", "unit_price": "1.234"}])),
        "[1, 2]",
        json.dumps(order("a-4")),
    ])
    rows = list(read_jsonl(path, today=TODAY))
    assert [row.line for row in rows] == [1, 4, 5, 6, 7]
    assert [row.external_id for row in rows] == ["a-1", None, "a-3", None, "a-4"]
    assert [row.order is not None for row in rows] == [True, False, False, False, True]
    assert all((row.order is None) == (row.error is not None) for row in rows)
    assert str(rows[1].error).startswith("order (unknown external_id): not valid JSON: Expecting value at column")
    assert str(rows[2].error) == "order a-3: items[0].unit_price: at most 2 decimals (got '1.234'); round to cents"
    assert "must be a JSON object" in str(rows[3].error)


def test_json_floats_become_exact_decimals(tmp_path):
    path = write(tmp_path, ['{"external_id": "f-1", "order_time": "2024-01-02T03:04:05Z", '
                            '"customer": {"email": "x@example.com"}, '
                            '"items": [{"sku": "X", "unit_price": 19.9, "quantity": 3}]}'])
    (row,) = read_jsonl(path, today=TODAY)
    assert row.order.items[0].unit_price == Decimal("19.90") and row.order.total == Decimal("59.70")


def test_bom_crlf_and_non_utf8(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(order("b-1")).encode() + b"\r\n\xff\xfe{}\r\n"
                     + json.dumps(order("b-2")).encode() + b"\r\n")
    rows = list(read_jsonl(path, today=TODAY))
    assert [(r.line, r.external_id, r.order is not None) for r in rows] == [(1, "b-1", True), (2, None, False),
                                                                           (3, "b-2", True)]
    assert "not valid UTF-8 text (byte 0xFF at character 1)" in str(rows[1].error)


def test_today_reaches_the_validation(tmp_path):
    path = write(tmp_path, [json.dumps(order("s-1", subscriptions=[{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY",
                                                                  "start_date": "2026-12-01"}]))])
    assert next(read_jsonl(path, today=TODAY)).order is not None
    assert "in the past" in str(next(read_jsonl(path, today=date(2026, 12, 2))).error)

