"""Every resource method of the client over real HTTP against the sandbox (requests spec-checked by `recorder`)."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from worker.keap import KeapNotFound, KeapValidationError, build_filter, money

ORDER_TIME = datetime(2024, 5, 21, 23, 0, tzinfo=timezone.utc)


def order_body(**extra):
    return {"contact_id": "1", "order_time": ORDER_TIME, "order_title": "Order #1001", "order_type": "ONLINE",
            "order_items": [{"product_id": "2", "quantity": 2, "price_per_unit": Decimal("19.90")},
                            {"item_type": "SHIPPING", "name": "Shipping", "quantity": 1,
                             "price_per_unit": Decimal("4.95")}],
            "notes": None, **extra}


def test_contacts(client):
    assert client.contacts.find_by_email("card.holder@example.com")["id"] == "1"
    assert client.contacts.find_by_email("nobody@example.com") is None
    body = {"given_name": "Ada", "family_name": "Lovelace", "phone_numbers": None,
            "email_addresses": [{"email": "ada+keap@example.com", "field": "EMAIL1"}]}
    created = client.contacts.create(body)
    assert created["id"] != "1" and created["given_name"] == "Ada"
    assert client.contacts.find_by_email("ada+keap@example.com")["id"] == created["id"]
    again = client.contacts.create({**body, "given_name": "Augusta"}, duplicate_option="Email")
    assert again["id"] == created["id"]
    updated = client.contacts.update(created["id"], {"family_name": "King", "given_name": "Ignored"},
                                     update_mask=["family_name"])
    assert (updated["given_name"], updated["family_name"]) == ("Augusta", "King")
    assert client.contacts.get(created["id"])["family_name"] == "King"
    methods = client.contacts.list_payment_methods("1")
    assert [m["payment_method_id"] for m in methods] == ["1"]
    assert client.contacts.list_payment_methods(created["id"]) == []


def test_products(client):
    assert client.products.find_by_sku("TSHIRT-M")["id"] == "2"
    assert client.products.find_by_sku("tshirt-m")["id"] == "2"  # Keap matches text case-insensitively
    assert client.products.find_by_sku("NO-SUCH-SKU") is None
    club = client.products.get("11")
    assert money(club["price"]) == Decimal("25.00")
    assert {p["billing_cycle"] for p in club["subscription_plans"]} == {"MONTHLY", "YEARLY"}
    poster = client.products.create({"name": "Poster", "sku": "POSTER-A2", "price": Decimal("12.50"),
                                     "short_description": "A2 poster", "description": None})
    assert money(poster["price"]) == Decimal("12.50")
    assert client.products.find_by_sku("POSTER-A2")["id"] == poster["id"]

    first, token = client.products.list(page_size=5)
    second, _ = client.products.list(page_size=5, page_token=token)
    assert len(first) == len(second) == 5 and token
    assert not {p["id"] for p in first} & {p["id"] for p in second}
    client.page_size = 5
    calls = client.calls
    everything = list(client.products.iter_all())
    assert len(everything) == len({p["id"] for p in everything}) == 13
    assert client.calls - calls == 3


def test_order_lifecycle(client, recorder):
    field = client.orders.create_custom_field("External Order ID")
    assert field["id"] in [f["id"] for f in client.orders.get_model()["custom_fields"]]
    order = client.orders.create(order_body(custom_fields=[{"id": field["id"], "content": "shop-1001"}]))
    assert money(order["total"]) == Decimal("44.75")
    wire = recorder.sent[-1].body
    assert b'"price_per_unit":19.9}' in wire and b'"order_time":"2024-05-21T23:00:00Z"' in wire
    assert b"notes" not in wire  # None-valued keys are not sent
    assert client.orders.get(order["id"])["title"] == "Order #1001"

    assert [o["id"] for o in client.orders.find_by_custom_field(field["field_name"], "shop-1001")] == [order["id"]]
    assert client.orders.find_by_custom_field(field["field_name"], "shop-9999") == []
    assert order["id"] in [o["id"] for o in client.orders.find(contact_id="1")]

    item = client.orders.add_item(order["id"], {"product_id": "4", "quantity": 1})
    assert item["id"] and money(client.orders.get(order["id"])["total"]) == Decimal("57.25")
    updated = client.orders.update(order["id"], {"custom_fields": [{"id": field["id"], "content": "shop-1001-b"}],
                                                 "order_title": "not in the mask"}, ["custom_fields"])
    assert updated["title"] == "Order #1001"
    assert client.orders.find_by_custom_field(field["field_name"], "shop-1001-b")[0]["id"] == order["id"]

    paid = client.orders.add_payment(order["id"], {
        "payment_amount": Decimal("10.10"), "apply_to_commissions": False, "payment_method_type": "Cash",
        "payment_time": ORDER_TIME, "notes": "ext-payment-77"})
    assert paid["payment_amount"] == 10.1
    payments = client.orders.list_payments(order["id"])
    assert [(p["amount"], p["note"]) for p in payments] == [(10.1, "ext-payment-77")]

    with pytest.raises(KeapValidationError, match="cannot be deleted"):
        client.orders.delete(order["id"])  # Keap keeps orders with a payment
    spare = client.orders.create(order_body())
    assert client.orders.delete(spare["id"]) is None
    with pytest.raises(KeapNotFound):
        client.orders.get(spare["id"])


def test_order_list_pages_and_find_reads_every_page(client):
    ids = [client.orders.create(order_body(order_title=f"Order #{n}"))["id"] for n in range(5)]
    page, token = client.orders.list(filter=build_filter({"contact_id": "1"}), page_size=2, order_by="id desc")
    assert [o["id"] for o in page] == ids[::-1][:2] and token
    rest, _ = client.orders.list(filter=build_filter({"contact_id": "1"}), page_size=2, page_token=token,
                                 order_by="id desc")
    assert [o["id"] for o in rest] == ids[::-1][2:4]
    client.page_size = 2
    assert sorted(o["id"] for o in client.orders.find(contact_id="1")) == sorted(ids)
    payments = [client.orders.add_payment(ids[0], {"payment_amount": Decimal("1.00"), "apply_to_commissions": True,
                                                   "payment_method_type": "Check"}) for _ in range(3)]
    assert len(client.orders.list_payments(ids[0])) == len(payments)


def test_subscriptions(client):
    subscription = client.subscriptions.create({"contact_id": "1", "subscription_plan_id": "1",
                                                "billing_amount": Decimal("25.00"), "auto_charge": False})
    assert client.subscriptions.get(subscription["id"])["subscription_plan_id"] == "1"
    assert [s["id"] for s in client.subscriptions.find(contact_id="1", subscription_plan_id="1")] == [
        subscription["id"]]
    assert client.subscriptions.find(contact_id="1", subscription_plan_id="2") == []
    with pytest.raises(KeapValidationError, match="Duplicate subscription"):
        client.subscriptions.create({"contact_id": "1", "subscription_plan_id": "1"})
    invoice = client.subscriptions.invoice(subscription["id"])
    assert invoice["contact"]["id"] == "1" and money(invoice["total"]) == Decimal("25.00")


def test_ids_in_paths_are_url_quoted(client):
    order = client.orders.create(order_body())
    with pytest.raises(KeapNotFound):
        client.orders.get(f"{order['id']}/payments")  # unquoted, this would list the order's payments
