"""Mapping an order to Keap request bodies, and comparing our lines with Keap's: pure functions, no I/O."""
from __future__ import annotations

from decimal import Decimal

from worker.contract import parse_order
from worker.steps import payloads


def order(**overrides):
    data = {
        "external_id": "shop-1", "order_time": "2024-03-05T09:22:10-05:00",
        "customer": {"email": "a@example.com", "given_name": "Ana", "family_name": "Lima", "phone": "+1 512 555 0100",
                     "company": "Lima Designs",
                     "shipping_address": {"line1": "500 Main St", "locality": "Dallas", "region": "TX",
                                          "postal_code": "75201", "country_code": "USA"}},
        "items": [{"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90", "unit_cost": "7.10"},
                  {"type": "SHIPPING", "name": "UPS Ground", "unit_price": "5.00"}],
        "payments": [{"amount": "44.80", "method": "Check", "notes": "cheque 12"}],
        "custom_fields": {"Channel": "Shopify"},
    }
    data.update(overrides)
    return parse_order(data)


def test_order_body_creates_everything_inline_in_utc():
    o = order()
    body = payloads.order_body(o, "7", {"TSHIRT-M": "3"}, [{"id": "9", "content": "shop-1"}])
    assert body["contact_id"] == "7" and body["order_time"] == "2024-03-05T14:22:10Z"
    assert body["order_items"][0] == {"item_type": "PRODUCT", "product_id": "3", "quantity": 2,
                                      "price_per_unit": Decimal("19.90"), "cost_per_unit": Decimal("7.10"),
                                      "name": None, "description": None}
    assert body["order_items"][1]["item_type"] == "SHIPPING" and body["order_items"][1]["product_id"] is None
    assert body["shipping_address"]["first_name"] == "Ana" and body["shipping_address"]["zip_code"] == "75201"
    assert body["custom_fields"] == [{"id": "9", "content": "shop-1"}] and body["promo_codes"] is None


def test_payment_body_carries_the_marker_that_finds_it_again():
    o = order()
    body = payloads.payment_body(o.payments[0], o)
    assert body["payment_method_type"] == "Check" and body["payment_amount"] == Decimal("44.80")
    assert body["notes"] == f"cheque 12 {payloads.payment_marker(o.payments[0])}"
    assert body["payment_time"] == "2024-03-05T14:22:10Z"  # defaults to the order time


def test_contact_body_never_sends_an_empty_address_list():
    o = order()
    body = payloads.contact_body(o.customer)
    assert [a["field"] for a in body["addresses"]] == ["SHIPPING"]
    assert body["email_addresses"] == [{"email": "a@example.com", "field": "EMAIL1"}]
    bare = payloads.contact_body(order(customer={"email": "b@example.com"}).customer)
    assert "addresses" not in bare and "phone_numbers" not in bare


def test_item_keys_match_keaps_lines_for_products_by_id_and_other_lines_by_name():
    o = order()
    keap_lines = [
        {"item_type": "PRODUCT", "product": {"id": "3", "sku": "TSHIRT-M"}, "quantity": 2,
         "price_per_unit": {"amount": 1990, "currency_code": "USD"}, "cost_per_unit": {"amount": 710}},
        {"item_type": "SHIPPING", "name": "UPS Ground", "quantity": 1, "price_per_unit": {"amount": 500}},
    ]
    ours = [payloads.item_key(item, {"TSHIRT-M": "3"}.get(item.sku or "")) for item in o.items]
    assert ours == [payloads.keap_item_key(line) for line in keap_lines]
    keap_lines[0]["quantity"] = 3
    assert payloads.item_key(o.items[0], "3") != payloads.keap_item_key(keap_lines[0])


def test_custom_field_values_keep_decimals_exact():
    values = payloads.custom_field_values({"Weight": "4", "Note": "5"}, {"Weight": Decimal("1.10"), "Note": "x"})
    assert values == [{"id": "4", "content": "1.10"}, {"id": "5", "content": "x"}]


def test_promo_codes_never_go_beside_discount_lines():
    plain = order(promo_codes=["SAVE10"])
    assert payloads.order_body(plain, "7", {"TSHIRT-M": "3"}, [])["promo_codes"] == ["SAVE10"]
    discounted = order(promo_codes=["SAVE10"], payments=[], items=[
        {"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90"},
        {"type": "DISCOUNT", "name": "SAVE10", "unit_price": "3.98"}])
    assert payloads.order_body(discounted, "7", {"TSHIRT-M": "3"}, [])["promo_codes"] is None


def test_the_lists_a_contact_create_holds_back_are_every_list_it_would_replace():
    body = payloads.contact_body(order().customer)
    assert set(payloads.CONTACT_LISTS) <= set(body) and not set(body) - set(payloads.CONTACT_LISTS) - {
        "email_addresses", "given_name", "family_name", "source_type"}
