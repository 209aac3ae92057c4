"""Contacts (upsert, lists replaced), products (SKU lookups) and subscriptions (duplicate check, invoicing)."""
from __future__ import annotations

import datetime as dt


def test_contact_upsert_replaces_address_lists(api):
    body = {"given_name": "Ada", "email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}],
            "addresses": [{"field": "BILLING", "line1": "1 Old Road", "country_code": "USA"},
                          {"field": "SHIPPING", "line1": "2 Dock", "country_code": "USA"}]}
    created = api.post("/contacts", params={"duplicate_option": "Email"}, json=body)
    assert created.status_code == 201
    updated = api.post("/contacts", params={"duplicate_option": "Email"}, json={
        "email_addresses": [{"email": "ADA@example.com", "field": "EMAIL1"}],
        "addresses": [{"field": "BILLING", "line1": "9 New Street", "country_code": "USA"}]})
    assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
    assert [a["line1"] for a in updated.json()["addresses"]] == ["9 New Street"]  # SHIPPING removed
    assert updated.json()["given_name"] == "Ada"  # fields not sent are kept
    again = api.post("/contacts", json={"email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}]})
    assert again.status_code == 201 and again.json()["id"] != created.json()["id"]
    found = api.get("/contacts", params={"filter": "email==ada@example.com"}).json()["contacts"]
    assert len(found) == 2
    assert api.get("/contacts", params={"filter": "given_name==Ad*"}).json()["contacts"][0]["id"] == \
        created.json()["id"]
    assert api.post("/contacts", json={"given_name": "Nobody"}).status_code == 400
    assert api.post("/contacts", params={"duplicate_option": "Phone"}, json=body).status_code == 400
    region_only = api.post("/contacts", json={"addresses": [{"field": "BILLING", "region_code": "US-AZ"}]})
    assert region_only.status_code == 400 and "country_code" in region_only.json()["message"]


def test_contact_get_patch_and_payment_methods(api):
    seed = api.get("/contacts/1").json()
    assert seed["given_name"] == "Casey" and seed["email_addresses"][0]["email"] == "card.holder@example.com"
    patched = api.patch("/contacts/1", json={"family_name": "Holder-Smith"})
    assert patched.status_code == 200 and patched.json()["family_name"] == "Holder-Smith"
    cards = api.get("/contacts/1/paymentMethods").json()["records"]
    assert [(c["payment_method_id"], c["card_info"]["last_four"]) for c in cards] == [("1", "4242")]
    assert api.get("/contacts/999/paymentMethods").status_code == 404


def test_products_by_sku_and_plans(api):
    found = api.get("/products", params={"filter": "sku==COFFEE-CLUB"}).json()["products"]
    assert len(found) == 1 and found[0]["price"]["formatted_amount"] == "$25.00"
    product = api.get(f"/products/{found[0]['id']}").json()
    assert [(p["billing_cycle"], p["plan_price"]["amount"]) for p in product["subscription_plans"]] == [
        ("MONTHLY", 2500), ("YEARLY", 27000)]
    shirts = api.get("/products", params={"filter": "sku==tshirt-*", "order_by": "sku desc"}).json()["products"]
    assert [p["sku"] for p in shirts] == ["TSHIRT-S", "TSHIRT-M", "TSHIRT-L"]
    assert api.get("/products", params={"filter": "price==1"}).status_code == 400
    created = api.post("/products", json={"name": "Filter papers", "sku": "FILTER-100", "price": 399,
                                          "short_description": "100 papers"})
    assert created.status_code == 201 and created.json()["price"]["formatted_amount"] == "$3.99"
    assert int(created.json()["id"]) > 12


def _plan(api, sku: str, cycle: str) -> str:
    product = api.get("/products", params={"filter": f"sku=={sku}"}).json()["products"][0]
    return next(p["id"] for p in product["subscription_plans"] if p["billing_cycle"] == cycle)


def test_subscription_duplicate_check_start_date_and_invoice(api):
    plan = _plan(api, "COFFEE-CLUB", "MONTHLY")
    created = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": plan})
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["billing_amount"] == 25.0 and sub["billing_cycle"] == "MONTH" and sub["payment_method_id"] == "1"
    duplicate = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": plan})
    assert duplicate.status_code == 400 and "Duplicate" in duplicate.json()["message"]
    allowed = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": plan,
                                               "allow_duplicate": True})
    assert allowed.status_code == 201
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    past = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": _plan(
        api, "SUPPORT-PLAN", "YEARLY"), "start_date": yesterday})
    assert past.status_code == 400 and "start_date" in past.json()["message"]
    listed = api.get("/subscriptions", params={"filter": f"contact_id==1;subscription_plan_id=={plan};"
                                                         "status==Active"}).json()["subscriptions"]
    assert [s["id"] for s in listed] == [sub["id"], allowed.json()["id"]]
    assert api.get(f"/subscriptions/{sub['id']}").json()["next_bill_date"] == sub["start_date"]

    invoice = api.post(f"/subscriptions/{sub['id']}:invoice")
    assert invoice.status_code == 200, invoice.text
    order = invoice.json()
    assert order["total"]["amount"] == 2500
    assert order["order_items"][0]["subscription_id"] == sub["id"]
    assert order["order_items"][0]["item_type"] == "SUBSCRIPTION"
    after = api.get(f"/subscriptions/{sub['id']}").json()
    assert after["last_bill_date"] == sub["start_date"] and after["next_bill_date"] > sub["start_date"]
    assert api.post(f"/subscriptions/{sub['id']}:invoice").status_code == 400  # nothing due any more
