"""CSV reader and writer: grouping rows into orders, error rows, and the write -> read round trip."""
from __future__ import annotations

import csv as stdlib_csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from producers.sources import csv as csv_source
from producers.sources.base import FileRejected, SeenIds
from producers.sources.csv import read_csv, write_csv
from worker.contract import parse_order

TODAY = date(2026, 11, 26)
HEADER = ["external_id", "order_time", "email", "given_name", "billing_region", "billing_country_code",
          "item_type", "sku", "item_name", "quantity", "unit_price", "payment_amount", "payment_method",
          "subscription_sku", "subscription_billing_cycle", "subscription_auto_charge", "promo_codes", "cf:Sales Channel"]


def row(external_id: str, **cells: str) -> list[str]:
    return [cells.get(column.replace("cf:Sales Channel", "channel"), "") if column != "external_id" else external_id
            for column in HEADER]


def write(tmp_path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path = tmp_path / "orders.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = stdlib_csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


ORDER = {"order_time": "2024-03-05T14:22:10Z", "email": "ana.lima@example.com", "given_name": "Ana"}


def test_the_stdlib_csv_is_not_shadowed():
    assert csv_source.csv is stdlib_csv


def test_consecutive_rows_form_one_order(tmp_path):
    path = write(tmp_path, [
        row("o-1", **ORDER, billing_region="TX", billing_country_code="USA", sku="TSHIRT-M", quantity="2",
            unit_price="19.90", promo_codes="SPRING | VIP", channel="Shopify"),
        row("o-1", item_type="SHIPPING", item_name="UPS Ground", unit_price="5.00", payment_amount="44.80",
            payment_method="Cash"),
        row("o-1", subscription_sku="COFFEE-CLUB", subscription_billing_cycle="MONTHLY", subscription_auto_charge="no"),
        row("o-2", **ORDER, sku="MUG-CLASSIC", unit_price="12.50"),
    ])
    first, second = read_csv(path, today=TODAY)
    assert (first.line, second.line) == (2, 5)
    order = first.order
    assert [(i.type, i.sku, i.quantity) for i in order.items] == [("PRODUCT", "TSHIRT-M", 2), ("SHIPPING", None, 1)]
    assert order.total == Decimal("44.80") and order.payments[0].method == "Cash"
    assert order.subscriptions[0].auto_charge is False and order.subscriptions[0].sku == "COFFEE-CLUB"
    assert order.promo_codes == ["SPRING", "VIP"] and order.custom_fields == {"Sales Channel": "Shopify"}
    assert order.customer.billing_address.region == "TX" and order.customer.given_name == "Ana"
    assert second.order.external_id == "o-2" and second.order.custom_fields == {}


def test_reappearing_external_id_is_an_error_for_the_later_group(tmp_path):
    path = write(tmp_path, [row("o-1", **ORDER, sku="X", unit_price="1"), row("o-2", **ORDER, sku="X", unit_price="1"),
                            row("o-1", **ORDER, sku="Y", unit_price="1")])
    rows = list(read_csv(path, today=TODAY))
    assert [r.order is not None for r in rows] == [True, True, False]
    assert rows[2].external_id == "o-1" and rows[2].line == 4
    assert str(rows[2].error) == ("order o-1: external_id: already used by an earlier order at line 2; "
                                  "each order may appear once in a file: keep the rows of an order together and "
                                  "remove repeated orders")


def test_bloom_false_positives_are_confirmed_before_reporting(tmp_path, monkeypatch):
    monkeypatch.setattr(SeenIds, "BITS", 8)  # every id collides: each lookup is a "maybe"
    path = write(tmp_path, [row(f"o-{n}", **ORDER, sku="X", unit_price="1") for n in range(5)]
                 + [row("o-2", **ORDER, sku="X", unit_price="1")])
    rows = list(read_csv(path, today=TODAY))
    assert [r.error is None for r in rows] == [True] * 5 + [False]
    assert "at line 4" in str(rows[5].error)


def test_after_many_repeats_hits_are_reported_unconfirmed(tmp_path, monkeypatch):
    monkeypatch.setattr(SeenIds, "CONFIRM_LIMIT", 0)
    path = write(tmp_path, [row("o-1", **ORDER, sku="X", unit_price="1"), row("o-2", **ORDER, sku="X", unit_price="1"),
                            row("o-1", **ORDER, sku="X", unit_price="1")])
    assert "already used by an earlier order;" in str(list(read_csv(path, today=TODAY))[2].error)


def test_order_cells_that_differ_within_an_order_are_errors_without_values(tmp_path):
    path = write(tmp_path, [row("o-1", **ORDER, sku="X", unit_price="1"),
                            row("o-1", email="other.person@example.com", sku="Y", unit_price="1")])
    (result,) = read_csv(path, today=TODAY)
    assert result.order is None and result.external_id == "o-1"
    assert str(result.error) == ("order o-1: email: line 3 differs from line 2, the order's first line; "
                                 "repeat the same order values on every row of an order, or leave them empty")


def test_line_errors_name_their_csv_line(tmp_path):
    path = write(tmp_path, [row("o-1", **ORDER, sku="X", unit_price="1"), row("o-1", sku="Y", unit_price="1.005"),
                            row("o-1", payment_amount="1", payment_method="Cash", quantity="x")])
    (result,) = read_csv(path, today=TODAY)
    messages = [str(e) for e in result.error.errors]
    assert "items[1].unit_price: at most 2 decimals (got '1.005') [line 3]; round to cents" in messages
    assert any(m.startswith("items[2].quantity: must be a whole number (got 'x') [line 4]") for m in messages)


def test_header_problems_reject_the_file_before_any_row(tmp_path):
    path = write(tmp_path, [row("o-1", **ORDER)], header=[*HEADER[:-1], "colour"])
    with pytest.raises(FileRejected, match="unknown column\\(s\\) 'colour'.*allowed: external_id"):
        next(read_csv(path, today=TODAY))
    path = write(tmp_path, [["x"]], header=["email"])
    with pytest.raises(FileRejected, match="no external_id column"):
        next(read_csv(path, today=TODAY))


def test_quoted_newlines_blank_rows_and_bad_cell_counts(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("external_id,order_time,email,sku,unit_price,item_name\n"
                    'o-1,2024-03-05T14:22:10Z,a@example.com,X,1,"two\nlines"\n'
                    ",,,,,\n"
                    "\n"
                    "o-2,2024-03-05T14:22:10Z,a@example.com,X\n"
                    "o-3,2024-03-05T14:22:10Z,a@example.com,X,1,\n", encoding="utf-8")
    rows = list(read_csv(path, today=TODAY))
    assert [(r.line, r.external_id, r.order is not None) for r in rows] == [(2, "o-1", True), (6, "o-2", False),
                                                                           (7, "o-3", True)]
    assert rows[0].order.items[0].name == "two\nlines"
    assert str(rows[1].error) == ("order o-2: line 6 has 4 cells but the header has 6; "
                                  "quote cells that contain commas; every row needs one cell per column")


def test_a_malformed_row_makes_its_whole_order_an_error(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("external_id,order_time,email,sku,unit_price\n"
                    "o-1,2024-03-05T14:22:10Z,a@example.com,X,1\n"
                    "o-1,,,Y,1,2\n"
                    "o-1,,,Z,1\n"
                    "\"\"\n"
                    "o-2,2024-03-05T14:22:10Z,a@example.com,X,1\n", encoding="utf-8")
    rows = list(read_csv(path, today=TODAY))
    assert [(r.line, r.external_id, r.order is not None) for r in rows] == [(2, "o-1", False), (6, "o-2", True)]
    assert str(rows[0].error) == "order o-1: line 3 has 6 cells but the header has 5; " + (
        "quote cells that contain commas; every row needs one cell per column")


def test_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("external_id,order_time,email,sku,unit_price\n".encode() + b"o-1,x,Jos\xe9@example.com,X,1\n")
    (result,) = read_csv(path, today=TODAY)
    assert result.order is None and "line 2 not valid UTF-8 text (byte 0xE9" in str(result.error)


def test_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert list(read_csv(path)) == []


def test_write_then_read_gives_the_same_orders(tmp_path):
    orders = [parse_order({
        "external_id": "w-1", "order_time": "2024-03-05T09:22:10-05:00", "title": "Order, \"quoted\"",
        "customer": {"email": "x@example.com", "shipping_address": {"first_name": "A", "line1": "1 Elm Pl",
                                                                      "region": "OR", "country_code": "USA"}},
        "items": [{"sku": "MUG-CLASSIC", "unit_price": "12.50", "quantity": 2, "description": "multi\nline"},
                  {"type": "DISCOUNT", "name": "Promo", "unit_price": "2.50"}],
        "payments": [{"amount": "10", "method": "Check"}, {"amount": "5", "charge_payment_method_id": "1"},
                     {"amount": "1.50", "method": "Cash", "external_id": "r-9", "notes": "rest"}],
        "subscriptions": [{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY", "start_date": "2026-12-01",
                           "auto_charge": True, "charge_payment_method_id": "1", "quantity": 2}],
        "custom_fields": {"Sales Channel": "Phone"}, "promo_codes": ["A", "B"], "notes": "n",
    }, today=TODAY)]
    stream = io.StringIO(newline="")
    write_csv(orders, stream, custom_field_labels=["Sales Channel", "Fulfillment"])
    path = tmp_path / "written.csv"
    path.write_text(stream.getvalue(), encoding="utf-8", newline="")
    assert [r.order for r in read_csv(path, today=TODAY)] == orders


def test_write_refuses_custom_fields_without_a_column():
    order = parse_order({"external_id": "w-2", "order_time": "2024-03-05T14:22:10Z", "customer": {"email": "x@example.com"},
                         "items": [{"sku": "X", "unit_price": "1"}], "custom_fields": {"Gift": "yes"}}, today=TODAY)
    with pytest.raises(ValueError, match="Gift"):
        write_csv([order], io.StringIO())
