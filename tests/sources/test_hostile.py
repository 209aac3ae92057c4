"""Hostile files: every record is imported or reported with its line, nothing valid is lost, nothing raises, and
the counting pass agrees with the reader. Formats are detected from content, not from the file name."""
from __future__ import annotations

import codecs
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from producers.sources import count_orders, detect_format, read_file
from producers.sources.base import FileRejected, ReadOptions
from tests.sources.test_woocommerce import OPTIONS as WOO_OPTIONS

GENERATOR = Path(__file__).resolve().parents[2] / "examples" / "generate_orders.py"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, str]:
    """100 valid orders in our JSONL and CSV layouts (text)."""
    folder = tmp_path_factory.mktemp("hundred")
    made = {}
    for fmt in ("jsonl", "csv"):
        out = folder / f"100.{fmt}"
        subprocess.run([sys.executable, str(GENERATOR), "--count", "100", "--seed", "11", "--format", fmt,
                        "--out", str(out)], check=True)
        made[fmt] = out.read_text(encoding="utf-8")
    return made


def read_all(path: Path, fmt: str | None = None, options: ReadOptions | None = None):
    options = options or ReadOptions()
    name = detect_format(path, fmt, options)
    rows = list(read_file(path, name, options))
    assert count_orders(path, name, options) == len(rows)  # the progress total is the truth
    assert all((row.order is None) != (row.error is None) for row in rows)
    return rows


def order_ids(text: str) -> list[str]:
    """External ids in file order of our CSV layout (first column)."""
    ids = []
    for cells in list(csv.reader(io.StringIO(text)))[1:]:
        if cells and (not ids or ids[-1] != cells[0]):
            ids.append(cells[0])
    return ids


def test_one_cp1252_byte_in_order_50_of_100_costs_order_50_only(tmp_path, generated):
    text = generated["csv"]
    target = order_ids(text)[49]
    title = f"Order #{target.split('-')[1]}".encode()
    path = tmp_path / "orders.csv"
    path.write_bytes(text.encode().replace(title, b"\xc9" + title[1:]))  # "Order #1050" -> cp1252 "Érder #1050"

    rows = read_all(path)
    assert len(rows) == 100 and [r.external_id for r in rows if r.error] == [target]
    bad = next(r for r in rows if r.error)
    assert "not valid UTF-8 text (byte 0xC9" in str(bad.error) and "--encoding" in str(bad.error)
    # Told the encoding, the same file reads completely.
    assert all(r.order for r in read_all(path, options=ReadOptions(encoding="cp1252")))


def test_one_bad_byte_in_a_jsonl_line_costs_that_line(tmp_path, generated):
    lines = generated["jsonl"].encode().split(b"\n")
    lines[49] = lines[49].replace(b"Order", b"\xffrder", 1)
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"\n".join(lines))
    rows = read_all(path)
    assert len(rows) == 100 and [r.line for r in rows if r.error] == [50]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_boms_and_utf16_are_detected(tmp_path, generated, encoding, fmt):
    path = tmp_path / f"orders.{fmt}"
    path.write_bytes(generated[fmt].encode(encoding))
    rows = read_all(path)
    assert len(rows) == 100 and all(r.order for r in rows)


def test_excel_semicolon_csv_with_crlf_and_bom(tmp_path, generated):
    rows_in = list(csv.reader(io.StringIO(generated["csv"])))
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(rows_in)
    path = tmp_path / "excel.csv"
    path.write_text(out.getvalue(), encoding="utf-8-sig", newline="")
    rows = read_all(path)
    assert len(rows) == 100 and all(r.order for r in rows)


def test_store_exports_are_detected_from_content_not_suffix(tmp_path):
    for name, fmt in [("shopify_orders_export.csv", "shopify"), ("woocommerce_rest.json", "woocommerce"),
                      ("woocommerce_aoe.csv", "woocommerce-aoe"), ("woocommerce_webtoffee.csv", "woocommerce-webtoffee"),
                      ("woocommerce_skyverge_items.csv", "woocommerce-skyverge")]:
        renamed = tmp_path / f"{fmt}.txt"
        renamed.write_bytes((FIXTURES / name).read_bytes())
        assert detect_format(renamed) == fmt


def test_deep_nesting_huge_numbers_and_huge_fields_are_reported_per_line(tmp_path, generated):
    lines = generated["jsonl"].splitlines()
    lines[10] = "[" * 200_000
    lines[20] = '{"external_id": "big-1", "items": [{"unit_price": ' + "9" * 5000 + "}]}"
    order = json.loads(lines[30])
    order["notes"] = "n" * 20_000_000
    lines[30] = json.dumps(order)
    order = json.loads(lines[40])
    order["notes"] = "n" * 70_000  # fits the line limit, not Keap's text fields
    lines[40] = json.dumps(order)
    lines[50] = json.dumps({**json.loads(lines[50]), "items": [{"sku": "X", "unit_price": 1, "quantity": 2**40}]})
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = read_all(path)
    assert len(rows) == 100
    errors = {r.line: str(r.error) for r in rows if r.error}
    assert sorted(errors) == [11, 21, 31, 41, 51]
    assert "nested too deeply" in errors[11]
    assert "thousands of digits" in errors[21]
    assert "longer than 1,000,000 characters" in errors[31]
    assert "notes: must be at most 65535 characters" in errors[41]
    assert "items[0].quantity: must be less than or equal to 2147483647" in errors[51]


def test_a_huge_quoted_csv_cell_with_newlines_costs_its_order_only(tmp_path, generated):
    rows_in = list(csv.reader(io.StringIO(generated["csv"])))
    notes = rows_in[0].index("notes")
    target = rows_in[5][0]
    rows_in[5][notes] = 'a "quoted", multi-line\n' * 1_000_000  # 24 MB, quoted, spanning a million lines
    out = io.StringIO()
    csv.writer(out).writerows(rows_in)
    path = tmp_path / "big.csv"
    path.write_text(out.getvalue())
    rows = read_all(path)
    assert len(rows) == 100 and [r.external_id for r in rows if r.error] == [target]
    assert "longer than 1,000,000 characters" in str(next(r for r in rows if r.error).error)


def test_duplicate_ids_are_reported_in_every_format(tmp_path, generated):
    lines = generated["jsonl"].splitlines()
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(lines + [lines[3]]) + "\n")
    rows = read_all(path)
    assert len(rows) == 101 and [r.line for r in rows if r.error] == [101]
    assert "already used by an earlier order at line 4" in str(rows[-1].error)

    shopify = (FIXTURES / "shopify_orders_export.csv").read_text()
    first_order = shopify.split("\n#1002", 1)[0].split("\n", 1)[1]
    path = tmp_path / "dup_shopify.csv"
    path.write_text(shopify + first_order + "\n")
    rows = read_all(path, options=ReadOptions(missing_email_placeholder="x-{external_id}@example.com"))
    assert "already used by an earlier order at line 2" in str(rows[-1].error)

    documents = json.loads((FIXTURES / "woocommerce_rest.json").read_text())
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(documents + documents[:1]))
    assert "already used by an earlier order at line 1" in str(read_all(path)[-1].error)


def test_a_broken_document_in_a_json_array_costs_that_document(tmp_path):
    documents = [json.dumps(doc) for doc in json.loads((FIXTURES / "woocommerce_rest.json").read_text())]
    broken = documents[1].replace('"status": "processing",', '"status": "processing" "oops": [1, 2',  1)
    path = tmp_path / "orders.json"
    path.write_text("[\n" + ",\n".join([documents[0], broken + "]", documents[2]]) + "\n]\n")
    rows = read_all(path, options=WOO_OPTIONS)
    assert [(r.line, r.external_id, r.order is not None) for r in rows] == [(2, "woo:6001", True), (3, None, False),
                                                                           (4, "woo:6003", True)]
    assert "not valid JSON: Expecting ',' delimiter" in str(rows[1].error)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"[]", b"[", b"{", b",,,\n", b"\x00\x00\x00",
                                     b"Name,Lineitem quantity\n", b'"unterminated\n', b"]]]", b"\xff\xfe\x00"])
def test_tiny_and_empty_files_are_refused_or_reported_never_imported(tmp_path, content):
    for suffix in (".csv", ".jsonl", ".json"):
        path = tmp_path / f"f{suffix}"
        path.write_bytes(content)
        try:
            rows = read_all(path)
        except FileRejected as exc:
            assert exc.message and exc.hint
            continue
        assert rows and all(row.error is not None for row in rows)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"   \r\n"])
def test_an_empty_file_is_refused_as_empty(tmp_path, content):
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    with pytest.raises(FileRejected, match="the file is empty"):
        read_all(path)


@pytest.mark.parametrize("content, kind", [(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "a PDF"),
                                           (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook"),
                                           (b"Name,Email\x00\x00\x01", "binary data")])
def test_a_file_that_is_not_text_is_refused_by_what_it_looks_like(tmp_path, content, kind):
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    with pytest.raises(FileRejected, match=f"not a text file .*{kind}"):
        read_all(path)


def test_a_header_without_orders_is_refused(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("external_id,email,sku,unit_price\n\n")
    with pytest.raises(FileRejected, match="holds no orders"):
        read_all(path)


def test_a_wrongly_shaped_file_is_one_short_error(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(",".join(f"Column {n}" for n in range(79)) + "\n" + ",".join("x" * 79) + "\n")
    with pytest.raises(FileRejected) as refused:
        read_all(path)
    assert "unknown column(s)" in str(refused.value) and "and 74 more" in str(refused.value)
    assert len(str(refused.value)) < 1000


def test_unknown_encoding_name_is_refused_by_the_cli(tmp_path):
    from click.testing import CliRunner

    from admin.cli import main

    path = tmp_path / "o.jsonl"
    path.write_text("{}\n")
    result = CliRunner().invoke(main, ["backfill", str(path), "--encoding", "klingon", "--dry-run"])
    assert result.exit_code == 2 and "not an encoding" in result.output


def test_codecs_bom_constants_cover_what_is_detected():
    assert codecs.BOM_UTF8 == b"\xef\xbb\xbf"
