"""Shopify's orders export (fixture built from the reference's synthetic §5.1 example), mapped field by field."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from producers.sources import count_orders, detect_format, read_file
from producers.sources.base import ReadOptions, parse_payment_map

FIXTURES = Path(__file__).parent / "fixtures"
EXPORT = FIXTURES / "shopify_orders_export.csv"
OPTIONS = ReadOptions(today=date(2026, 11, 26), id_prefixes={"shopify": "shopify:"},
                      payment_methods=parse_payment_map("Shopify Payments=Credit Card (Manual);"
                                                        "PayPal Express Checkout=Credit Card (Manual)"),
                      manual_payment_types=("Credit Card (Manual)", "Cash", "Check"),
                      missing_email_placeholder="order-{external_id}@no-email.invalid")


def rows(path: Path = EXPORT, options: ReadOptions = OPTIONS):
    return list(read_file(path, None, options))


def test_detected_from_the_header_and_counted_like_read():
    assert detect_format(EXPORT) == "shopify"
    assert count_orders(EXPORT, "shopify", OPTIONS) == len(rows()) == 3


def test_order_with_three_line_items_discount_shipping_tax_and_payment():
    order = rows()[0].order
    assert rows()[0].line == 2
    assert order.external_id == "shopify:1001" and order.title == "Shopify order #1001"
    assert order.order_time == datetime(2024, 3, 5, 14, 22, 10, tzinfo=timezone(timedelta(hours=-5)))
    assert order.order_type == "ONLINE"
    assert [(i.type, i.sku, i.name, i.quantity, i.unit_price) for i in order.items] == [
        ("PRODUCT", "TEE-BLK-M", "Crew Tee - Black / M", 2, Decimal("20.00")),
        ("PRODUCT", "MUG-WHT", "Mug - White", 1, Decimal("12.50")),
        ("PRODUCT", "STK-PACK", "Sticker Pack", 3, Decimal("3.00")),
        ("DISCOUNT", None, "Discount WELCOME10", 1, Decimal("6.15")),
        ("SHIPPING", None, "Shipping: Standard", 1, Decimal("5.00")),
        ("TAX", None, "NY State Tax 8%", 1, Decimal("4.43")),
    ]
    assert order.total == Decimal("64.78")  # the export's Total
    (payment,) = order.payments
    assert (payment.amount, payment.method, payment.external_id) == (Decimal("64.78"), "Credit Card (Manual)", "#1001.1")
    assert payment.paid_at == datetime(2024, 3, 5, 14, 22, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert order.custom_fields == {"Order Status": "paid", "Currency": "USD"}
    assert order.notes == "Leave at side door.\nGift wrap, please.\n\ngift_message: Happy birthday!\nutm_source: newsletter"
    customer = order.customer
    assert (customer.email, customer.given_name, customer.family_name, customer.phone) == (
        "ada@example.com", "Ada", "Example", "+15555550100")
    billing = customer.billing_address
    assert (billing.line1, billing.line2, billing.locality, billing.region, billing.region_code, billing.postal_code,
            billing.country_code) == ("12 Sample Rd", "Apt 3", "Albany", "NY", "US-NY", "12207", "USA")
    shipping = customer.shipping_address
    assert (shipping.first_name, shipping.last_name, shipping.country_code) == ("Ada", "Example", "USA")


def test_order_without_email_uses_the_configured_placeholder_and_is_unpaid():
    order = rows()[1].order
    assert order.external_id == "shopify:1002" and order.customer.email == "order-shopify-1002@no-email.invalid"
    assert order.payments == [] and order.total == Decimal("22.00")
    assert order.customer.company == "Sample LLC" and order.custom_fields["Order Status"] == "pending"


def test_order_without_email_is_reported_when_no_placeholder_is_set():
    row = rows(options=replace(OPTIONS, missing_email_placeholder=None))[1]
    assert row.order is None and row.external_id == "shopify:1002"
    assert str(row.error) == ("order shopify:1002: customer.email: the order has no email address; Keap finds and "
                              "creates contacts by email: add it, or set MISSING_EMAIL_PLACEHOLDER "
                              "(e.g. order-{external_id}@no-email.invalid) to import such orders under a placeholder")


def test_refunded_tax_inclusive_order_keeps_its_payment_and_records_the_refund():
    order = rows()[2].order
    # Total = Subtotal + Shipping: prices include the 19 % VAT, so no TAX line is added on top.
    assert [(i.type, i.sku, i.unit_price) for i in order.items] == [("PRODUCT", "SCARF-RED", Decimal("45.00"))]
    assert [(p.amount, p.method) for p in order.payments] == [(Decimal("45.00"), "Credit Card (Manual)")]
    assert order.custom_fields == {"Order Status": "refunded, cancelled", "Currency": "EUR", "Refunded Amount": "45.00"}
    address = order.customer.billing_address
    assert (address.postal_code, address.region_code, address.country_code) == ("01099", "DE-SN", "DEU")


def test_unmapped_gateway_names_the_gateway_and_the_setting():
    row = rows(options=replace(OPTIONS, payment_methods={}))[2]
    assert row.order is None
    (error,) = row.error.errors
    assert error.field == "Payment Method"
    assert error.message == "payment method 'PayPal Express Checkout' has no Keap Manual Payment Type"
    assert "PAYMENT_METHOD_MAP='PayPal Express Checkout=Credit Card (Manual)'" in error.hint


def test_prefix_is_configurable():
    assert [r.external_id for r in rows(options=replace(OPTIONS, id_prefix="eu-shop/"))] == [
        "eu-shop/1001", "eu-shop/1002", "eu-shop/1003"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orders_export.csv"
    path.write_text(text, encoding="utf-8")
    return path


HEADER = ("Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Amount,Created at,"
          "Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Payment Method,Billing Country,Id,Duties,Paid at,"
          "Outstanding Balance\n")


def test_a_header_variant_with_fewer_columns_and_duties_and_a_tip_balanced(tmp_path):
    # Columns are found by name; Duties become a FEE line and what is left of Total (a tip) one more line.
    path = write(tmp_path, HEADER + (
        "#2001,a@example.com,paid,USD,10.00,0.00,0.00,14.00,0.00,2024-01-02 03:04:05 +0000,1,Mug,10.00,MUG,"
        "Shopify Payments,US,1,3.00,,\n"))
    (row,) = rows(path)
    assert [(i.type, i.name, i.unit_price) for i in row.order.items] == [
        ("PRODUCT", "Mug", Decimal("10.00")), ("FEE", "Duties", Decimal("3.00")),
        ("FEE", "Adjustment to the store's total", Decimal("1.00"))]
    assert row.order.payments[0].amount == Decimal("14.00")


@pytest.mark.parametrize("cells, field, message", [
    ("2024-01-02 03:04:05 +0000,x,Mug,10.00,MUG", "Lineitem quantity", "not a whole number"),
    ("45384.34789351852,1,Mug,10.00,MUG", "Created at", "spreadsheet serial number"),
    ("2024-01-02 03:04:05 +0000,1,Mug,1e3,MUG", "Lineitem price", "not an amount"),
    ("2024-01-02 03:04:05 +0000,1,Mug,10.00,", "Lineitem sku", "has no SKU"),
])
def test_bad_cells_are_reported_with_their_column(tmp_path, cells, field, message):
    path = write(tmp_path, HEADER + f"#2001,a@example.com,pending,USD,10.00,0.00,0.00,10.00,0.00,{cells},,ZZ,1,,,\n")
    (row,) = rows(path)
    assert row.order is None and row.line == 2
    errors = {e.field: e for e in row.error.errors}
    assert message in errors[field].message
    assert "Billing Country" in errors and "ZZ" not in str(row.error)  # an address value is never echoed


def test_two_orders_sharing_a_name_are_reported(tmp_path):
    line = "#2001,a@example.com,pending,USD,10.00,0.00,0.00,10.00,0.00,2024-01-02 03:04:05 +0000,1,Mug,10.00,MUG,,US,{},,,\n"
    (row,) = rows(write(tmp_path, HEADER + line.format(1) + line.format(2)))
    assert "two orders share this name (another Id at line 3)" in str(row.error)


def test_the_payment_map_setting_adds_to_the_built_in_map_and_can_drop_a_pair():
    from producers.sources.base import ReadOptions as Options
    from worker.settings import Settings

    settings = Settings(_env_file=None, payment_method_map="PayPal Express Checkout=Credit Card (Manual);cod=")
    options = Options.from_settings(settings, today=OPTIONS.today, id_prefix="shopify:")
    assert options.payment_methods["shopify payments"] == "Credit Card (Manual)"  # the built-in pair stays
    assert options.payment_methods["paypal express checkout"] == "Credit Card (Manual)"
    assert "cod" not in options.payment_methods
    options = replace(options, manual_payment_types=OPTIONS.manual_payment_types)
    assert all(row.order is not None for row in rows(options=options) if row.external_id != "shopify:1002")
