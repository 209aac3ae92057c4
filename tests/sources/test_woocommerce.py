"""WooCommerce REST v3 JSON and the plugin CSV layouts (fixtures built from the reference's §5), field by field."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from producers.sources import count_orders, detect_format, read_file
from producers.sources.base import FileRejected, ReadOptions, parse_payment_map
from producers.sources.woocommerce import pipe_fields

FIXTURES = Path(__file__).parent / "fixtures"
REST = FIXTURES / "woocommerce_rest.json"
OPTIONS = ReadOptions(
    today=date(2026, 11, 26), id_prefixes={"woocommerce": "woo:"}, store_timezone="America/New_York",
    payment_methods=parse_payment_map("Credit card (Stripe)=Credit Card (Manual);stripe=Credit Card (Manual);"
                                      "PayPal=Credit Card (Manual);ppcp-gateway=Credit Card (Manual)"),
    manual_payment_types=("Credit Card (Manual)", "Cash", "Check"),
    missing_email_placeholder="order-{external_id}@no-email.invalid")
EST = timezone(timedelta(hours=-5))


def rows(path: Path, options: ReadOptions = OPTIONS):
    return list(read_file(path, None, options))


ORDER_A_ITEMS = [("PRODUCT", "TEE-BLK-M", 2, Decimal("20.00")), ("PRODUCT", "MUG-WHT", 1, Decimal("12.50")),
                 ("PRODUCT", "STK-PACK", 3, Decimal("3.00"))]


def items(order) -> list[tuple]:
    return [(i.type, i.sku or i.name, i.quantity, i.unit_price) for i in order.items]


def test_rest_json_array_field_by_field():
    assert detect_format(REST) == "woocommerce" and count_orders(REST, "woocommerce", OPTIONS) == 3
    a, b, c = rows(REST)
    assert (a.line, b.line, c.line) == (1, 22, 37)
    order = a.order
    assert order.external_id == "woo:6001" and order.title == "WooCommerce order 6001"
    assert order.order_time == datetime(2024, 3, 5, 19, 22, 10, tzinfo=timezone.utc)  # date_created_gmt
    assert items(order) == ORDER_A_ITEMS + [("DISCOUNT", "Discount welcome10", 1, Decimal("6.15")),
                                            ("SHIPPING", "Shipping: Flat rate", 1, Decimal("5.00")),
                                            ("TAX", "Tax", 1, Decimal("4.43"))]
    assert order.total == Decimal("64.78")
    (payment,) = order.payments
    assert (payment.amount, payment.method, payment.external_id) == (Decimal("64.78"), "Credit Card (Manual)",
                                                                     "ch_demo6001")
    assert payment.paid_at == datetime(2024, 3, 5, 19, 22, 12, tzinfo=timezone.utc)
    assert order.notes == "Leave at side door.\nGift wrap, please."
    assert order.custom_fields == {"Order Status": "completed", "Currency": "USD"}
    customer = order.customer
    assert (customer.email, customer.given_name, customer.family_name, customer.phone) == (
        "ada@example.com", "Ada", "Example", "555-555-0100")
    assert (customer.billing_address.region_code, customer.billing_address.country_code) == ("US-NY", "USA")
    assert customer.shipping_address.first_name == "Ada"

    # B: cash on delivery, not paid yet (date_paid_gmt null), a COD fee, an HTML entity in a name, no email.
    assert items(b.order) == [("PRODUCT", "CANDLE-LAV", 1, Decimal("18.00")),
                              ("SHIPPING", "Shipping: Local courier", 1, Decimal("4.00")),
                              ("FEE", "COD fee", 1, Decimal("2.00"))]
    assert b.order.items[0].name == "Soy Candle – Lavender" and b.order.payments == []
    assert b.order.customer.email == "order-woo-6002@no-email.invalid"

    # C: refunded; prices include tax but lines are stored net, so the tax line is added; the refund is recorded.
    assert items(c.order) == [("PRODUCT", "SCARF-RED", 1, Decimal("37.82")), ("TAX", "MwSt.", 1, Decimal("7.18"))]
    assert [(p.amount, p.external_id) for p in c.order.payments] == [(Decimal("45.00"), "PAYID-DEMO6003")]
    assert c.order.custom_fields == {"Order Status": "refunded", "Currency": "EUR", "Refunded Amount": "45.00"}


def test_rest_one_order_per_line_reads_the_same(tmp_path):
    documents = json.loads(REST.read_text())
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in documents))
    assert detect_format(path) == "woocommerce"
    assert [r.order for r in rows(path)] == [r.order for r in rows(REST)]
    assert [r.line for r in rows(path)] == [1, 2, 3]


def test_unit_prices_that_are_not_whole_cents_are_balanced(tmp_path):
    order = json.loads(REST.read_text())[0]
    order["line_items"] = [{"sku": "STK-PACK", "name": "Stickers", "quantity": 3, "subtotal": "10.00", "total": "10.00"}]
    order |= {"discount_total": "0.00", "shipping_lines": [], "shipping_total": "0.00", "total_tax": "0.00", "total": "10.00"}
    path = tmp_path / "one.json"
    path.write_text(json.dumps([order]))
    (row,) = rows(path)
    assert items(row.order) == [("PRODUCT", "STK-PACK", 3, Decimal("3.33")),
                                ("FEE", "Adjustment to the store's total", 1, Decimal("0.01"))]
    assert row.order.total == Decimal("10.00")


def test_advanced_order_export_default_fields():
    path = FIXTURES / "woocommerce_aoe.csv"
    assert detect_format(path) == "woocommerce-aoe"
    a, b, c = rows(path)
    # Item Cost is already discounted in AOE's default fields: no separate DISCOUNT line.
    assert items(a.order) == [("PRODUCT", "TEE-BLK-M", 2, Decimal("18.00")), ("PRODUCT", "MUG-WHT", 1, Decimal("11.25")),
                              ("PRODUCT", "STK-PACK", 3, Decimal("2.70")),
                              ("SHIPPING", "Shipping: Flat rate", 1, Decimal("5.00")), ("TAX", "Tax", 1, Decimal("4.43"))]
    assert a.order.total == Decimal("64.78") and a.order.payments[0].amount == Decimal("64.78")
    assert a.order.order_time == datetime(2024, 3, 5, 14, 22, tzinfo=EST)  # site time + STORE_TIMEZONE
    assert a.order.customer.billing_address.line1 == "12 Sample Rd, Apt 3"
    assert a.order.custom_fields == {"Order Status": "completed"}  # no currency column by default
    assert b.order.payments == []  # processing, cash on delivery: not paid yet
    # C: AOE's default quantity already subtracts refunds, so nothing is left to import.
    assert c.order is None and "every line item was refunded" in str(c.error)


def test_webtoffee_one_row_per_order():
    path = FIXTURES / "woocommerce_webtoffee.csv"
    assert detect_format(path) == "woocommerce-webtoffee"
    a, b, c = rows(path)
    assert (a.line, b.line, c.line) == (2, 3, 4)
    assert items(a.order) == ORDER_A_ITEMS + [("DISCOUNT", "Discount", 1, Decimal("6.15")),
                                              ("SHIPPING", "Shipping: Flat rate", 1, Decimal("5.00")),
                                              ("TAX", "Tax", 1, Decimal("4.43"))]
    assert a.order.payments[0].paid_at == datetime(2024, 3, 5, 14, 22, 12, tzinfo=EST)  # paid_date has an offset
    assert a.order.payments[0].external_id == "ch_demo3001"
    assert items(b.order)[-1] == ("FEE", "COD fee", 1, Decimal("2.00")) and b.order.payments == []
    assert c.order.custom_fields["Refunded Amount"] == "45.00" and c.order.payments[0].amount == Decimal("45.00")


def test_skyverge_one_row_per_item_with_state_names():
    path = FIXTURES / "woocommerce_skyverge_items.csv"
    assert detect_format(path) == "woocommerce-skyverge"
    a, b, c = rows(path)
    assert items(a.order)[:3] == ORDER_A_ITEMS and a.order.total == Decimal("64.78")
    billing = a.order.customer.billing_address
    assert (billing.region, billing.region_code) == ("New York", "US-NY")  # the state's name becomes its code
    assert a.order.payments[0].method == "Credit Card (Manual)"  # gateway id "stripe" through the map
    assert b.order.payments == [] and items(b.order)[-1] == ("FEE", "Fees", 1, Decimal("2.00"))
    assert c.order.custom_fields["Refunded Amount"] == "45.00"


def test_plugin_times_without_offset_need_the_store_time_zone():
    row = rows(FIXTURES / "woocommerce_skyverge_items.csv", replace(OPTIONS, store_timezone=None))[0]
    (error,) = row.error.errors
    assert error.field == "date_created" and "has no UTC offset" in error.message and "STORE_TIMEZONE" in error.hint


def test_analytics_download_is_recognised_and_refused_with_the_reason():
    with pytest.raises(FileRejected, match="Analytics.*no emails, addresses, SKUs"):
        rows(FIXTURES / "woocommerce_analytics.csv")


def test_pipe_fields_split_on_the_first_colon_only():
    assert pipe_fields("name:Tee: black|sku:T-1|quantity:2") == {"name": "Tee: black", "sku": "T-1", "quantity": "2"}


@pytest.mark.parametrize("change, field", [
    ({"line_items": [{"sku": "", "name": "x", "quantity": 1, "subtotal": "1.00"}]}, "line_items[0].sku"),
    ({"total": "1e3"}, "total"),
    ({"billing": {"email": "a@example.com", "country": "Narnia"}}, "billing.country"),
    ({"date_created_gmt": None, "date_created": "5 March"}, "date_created"),
    ({"payment_method_title": "Bitcoin", "payment_method": "btc"}, "payment_method_title"),
])
def test_rest_problems_name_the_field(tmp_path, change, field):
    order = json.loads(REST.read_text())[0] | change
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(order) + "\n")
    (row,) = rows(path)
    assert row.order is None and field in {e.field for e in row.error.errors}, row.error
    assert "Narnia" not in str(row.error)
