"""Each store format's header contract: a needed column removed refuses the file by name before any row is read;
an optional one removed is one warning naming what the orders will lack."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from producers.sources import FORMATS, check_file, read_file
from producers.sources.base import FileRejected
from tests.sources.test_shopify import OPTIONS as SHOPIFY_OPTIONS
from tests.sources.test_woocommerce import OPTIONS as WOO_OPTIONS

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = {"shopify": (FIXTURES / "shopify_orders_export.csv", SHOPIFY_OPTIONS),
         "woocommerce": (FIXTURES / "woocommerce_rest.json", WOO_OPTIONS),
         "woocommerce-aoe": (FIXTURES / "woocommerce_aoe.csv", WOO_OPTIONS),
         "woocommerce-webtoffee": (FIXTURES / "woocommerce_webtoffee.csv", WOO_OPTIONS),
         "woocommerce-skyverge": (FIXTURES / "woocommerce_skyverge_items.csv", WOO_OPTIONS),
         "csv": (EXAMPLES / "orders.csv", WOO_OPTIONS)}
CASES = [(name, column) for name in FILES for column in FORMATS[name].header.needed]
OPTIONAL = [(name, column) for name in FILES for column in FORMATS[name].header.optional]


def without(path: Path, names: tuple[str, ...], tmp_path: Path) -> Path:
    """The file with every column (CSV) or key (JSON, in every order) of these names removed."""
    out = tmp_path / path.name
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".json":
        orders = json.loads(text)
        out.write_text(json.dumps([{k: v for k, v in order.items() if k not in names} for order in orders]))
        return out
    rows = list(csv.reader(io.StringIO(text)))
    keep = [i for i, name in enumerate(rows[0]) if name.strip() not in names]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([[row[i] for i in keep if i < len(row)] for row in rows])
    out.write_text(buffer.getvalue(), encoding="utf-8")
    return out


def test_every_store_fixture_meets_its_contract():
    for name, (path, options) in FILES.items():
        assert FORMATS[name].header.needed, name
        check_file(path, name, options)
        assert any(row.order is not None for row in read_file(path, name, options))


@pytest.mark.parametrize("name, column", CASES, ids=[f"{n}-{c.names[0]}" for n, c in CASES])
def test_a_needed_column_removed_refuses_the_file_by_name(tmp_path, name, column):
    path, options = FILES[name]
    damaged = without(path, column.names, tmp_path)
    with pytest.raises(FileRejected) as refused:
        list(read_file(damaged, name, options))
    assert any(repr(n) in str(refused.value) for n in column.names), str(refused.value)
    with pytest.raises(FileRejected):  # found by content, or not recognised any more: never imported either way
        list(read_file(damaged, None, options))


@pytest.mark.parametrize("name, column", OPTIONAL, ids=[f"{n}-{c.names[0]}" for n, c in OPTIONAL])
def test_an_optional_column_removed_is_one_warning_saying_what_is_lost(tmp_path, name, column):
    path, options = FILES[name]
    before = set(check_file(path, name, options))
    after = set(check_file(without(path, column.names, tmp_path), name, options))
    if any(f"{n!r}" in w for w in before for n in column.names):
        assert after == before  # the fixture itself lacks it (AOE's default fields have no currency)
        return
    (new,) = after - before
    assert repr(column.names[0]) in new and column.absent in new


def test_a_shopify_export_without_its_email_column_never_suggests_the_placeholder(tmp_path):
    path, options = FILES["shopify"]
    with pytest.raises(FileRejected) as refused:
        list(read_file(without(path, ("Email",), tmp_path), "shopify", options))
    assert "MISSING_EMAIL_PLACEHOLDER" not in str(refused.value) and "'Email'" in str(refused.value)
