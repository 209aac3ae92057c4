"""The example files and the generator: realistic, complete, and read alike from JSONL and CSV."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

from producers.sources.csv import read_csv
from producers.sources.jsonl import read_jsonl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SKUS = {"TSHIRT-S", "TSHIRT-M", "TSHIRT-L", "MUG-CLASSIC", "COFFEE-BEANS-1KG", "TEA-SAMPLER", "GRINDER-PRO",
        "STICKER-PACK", "EBOOK-BREWING", "GIFT-CARD-50", "COFFEE-CLUB", "SUPPORT-PLAN"}


def jsonl_orders(path: Path) -> list:
    return [row.order for row in read_jsonl(path)]


def test_example_jsonl_has_one_invalid_row_in_the_middle():
    rows = list(read_jsonl(EXAMPLES / "orders.jsonl"))
    bad = [row for row in rows if row.error]
    assert len(bad) == 1 and 10 < rows.index(bad[0]) < len(rows) - 10
    assert "items[0].unit_price: at most 2 decimals (got '12.345')" in str(bad[0].error)
    assert sum(row.order is not None for row in rows) >= 50


def test_example_jsonl_covers_the_contract():
    orders = [order for order in jsonl_orders(EXAMPLES / "orders.jsonl") if order]
    emails = Counter(o.customer.email for o in orders)
    assert all(email.endswith("@example.com") for email in emails) and max(emails.values()) >= 2
    assert {o.order_time.year for o in orders} == {2023, 2024, 2025}
    assert {i.sku for o in orders for i in o.items if i.sku} | {s.sku for o in orders for s in o.subscriptions} <= SKUS
    types = Counter(i.type for o in orders for i in o.items)
    assert types["SHIPPING"] and types["TAX"] and types["DISCOUNT"]
    assert all(set(o.custom_fields) <= {"Sales Channel", "Fulfillment"} for o in orders)
    assert any(o.custom_fields for o in orders)
    paid_in_full = {p.method for o in orders if o.payments and o.payments_total == o.total for p in o.payments}
    assert {"Credit Card (Manual)", "Check", "Cash"} <= paid_in_full
    assert any(not o.payments for o in orders if o.items)
    assert any(o.payments and o.payments_total < o.total for o in orders)
    subscriptions = [s for o in orders for s in o.subscriptions]
    assert len(subscriptions) >= 3 and all(s.start_date is None for s in subscriptions)
    charges = [o for o in orders for p in o.payments if p.charge_payment_method_id]
    assert charges and {o.customer.email for o in charges} == {"card.holder@example.com"}
    assert all(p.charge_payment_method_id == "1" for o in charges for p in o.payments)


def test_example_csv_reads_as_the_same_orders_as_the_jsonl():
    by_id = {o.external_id: o for o in jsonl_orders(EXAMPLES / "orders.jsonl") if o}
    rows = list(read_csv(EXAMPLES / "orders.csv"))
    orders = [row.order for row in rows]
    assert len(orders) >= 10 and all(orders)
    assert any(len([i for i in o.items if i.type == "PRODUCT"]) > 1 for o in orders)
    assert any(o.subscriptions for o in orders) and any(o.payments for o in orders)
    for order in orders:
        assert order == by_id[order.external_id]


def generate(*args: str) -> str:
    command = [sys.executable, str(EXAMPLES / "generate_orders.py"), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def test_generator_is_deterministic_valid_and_varied(tmp_path):
    out = tmp_path / "gen.jsonl"
    text = generate("--count", "200", "--seed", "7", "--prefix", "acc-")
    assert text == generate("--count", "200", "--seed", "7", "--prefix", "acc-")
    assert text != generate("--count", "200", "--seed", "8", "--prefix", "acc-")
    out.write_text(text)
    orders = [row.order for row in read_jsonl(out, today=date(2099, 1, 1))]  # no start_date: never stale
    assert len(orders) == 200 and all(orders)
    assert len({o.external_id for o in orders}) == 200 and all(o.external_id.startswith("acc-") for o in orders)
    assert any(not o.items for o in orders) and any(o.subscriptions for o in orders)
    assert any(p.charge_payment_method_id for o in orders for p in o.payments)


def test_generator_csv_matches_its_jsonl(tmp_path):
    (tmp_path / "g.jsonl").write_text(generate("--count", "60", "--seed", "5"))
    generate("--count", "60", "--seed", "5", "--format", "csv", "--out", str(tmp_path / "g.csv"))
    assert [r.order for r in read_csv(tmp_path / "g.csv")] == jsonl_orders(tmp_path / "g.jsonl")
