"""Shopify's Admin API order (webhook body) read with the CSV export's mapping decisions."""
from __future__ import annotations

from producers.deliveries import read_delivery
from producers.sources import shopify_api
from producers.sources.base import ReadOptions
from tests.web.conftest import shopify_order


def options() -> ReadOptions:
    from worker.settings import Settings

    return ReadOptions.from_settings(Settings())


def test_discounts_shipping_taxes_and_the_payment_as_the_csv_reader_maps_them():
    data = shopify_order(1001, total_discounts="5.00", total_tax="3.20", total_price="43.00",
                         discount_codes=[{"code": "SPRING", "amount": "5.00"}],
                         tax_lines=[{"title": "State", "price": "2.00"}, {"title": "City", "price": "1.20"}],
                         note_attributes=[{"name": "gift", "value": "yes"}])
    row = read_delivery(data, shopify_api.FORMAT, options())
    assert row.error is None, row.error
    order = row.order.model_dump(mode="json")
    assert order["external_id"] == "shopify:1001" and order["title"] == "Shopify order #1001"
    lines = [(i["type"], i["name"], i["unit_price"]) for i in order["items"]]
    assert lines == [("PRODUCT", "T-shirt", "19.90"), ("DISCOUNT", "Discount SPRING", "5.00"),
                     ("SHIPPING", "Shipping: Post", "5.00"), ("TAX", "State", "2.00"), ("TAX", "City", "1.20")]
    [payment] = order["payments"]
    assert payment["amount"] == "43.00" and payment["method"] == "Cash"
    assert order["custom_fields"] == {"Order Status": "paid", "Currency": "USD"}
    assert order["notes"] == "gift: yes"


def test_tax_included_unpaid_and_a_tip_balanced():
    data = shopify_order(1002, paid=False, taxes_included=True, total_tax="6.00", total_price="46.80")
    order = read_delivery(data, shopify_api.FORMAT, options()).order.model_dump(mode="json")
    assert [i["type"] for i in order["items"]] == ["PRODUCT", "SHIPPING", "FEE"]  # the 2.00 tip balances the total
    assert order["payments"] == [] and order["custom_fields"]["Order Status"] == "pending"


def test_what_cannot_be_mapped_names_the_field_and_the_fix():
    data = shopify_order(1003, payment_gateway_names=["unknown-gateway"])
    data["line_items"][0]["sku"] = ""
    error = read_delivery(data, shopify_api.FORMAT, options()).error
    fields = {e.field for e in error.errors}
    assert {"line_items[0].sku", "payment_gateway_names"} <= fields and error.external_id == "shopify:1003"
    assert read_delivery([1, 2], shopify_api.FORMAT, options()).error is not None
