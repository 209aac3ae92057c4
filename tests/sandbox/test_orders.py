"""Orders, items, payments, custom fields and list semantics over real HTTP."""
from __future__ import annotations

from tests.sandbox.conftest import new_order


def ext_field(api, label="External Order ID") -> dict:
    response = api.post("/orders/model/customFields", json={"label": label, "field_type": "TEXT"})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_order_totals_items_and_lines_without_products(api):
    order = new_order(api, order_items=[
        {"product_id": "1", "quantity": 2, "cost_per_unit": 7.25},
        {"item_type": "SHIPPING", "name": "Shipping", "price_per_unit": 4.95, "quantity": 1},
        {"item_type": "TAX", "name": "Sales tax", "price_per_unit": 1.5, "quantity": 1},
        {"item_type": "DISCOUNT", "name": "Spring sale", "price_per_unit": 5, "quantity": 1},
    ])
    assert order["total"] == {"amount": 3980 + 495 + 150 - 500, "currency_code": "USD", "formatted_amount": "$41.25"}
    assert order["total_due"]["amount"] == 4125 and order["total_paid"]["amount"] == 0
    assert order["status"] == "DRAFT"
    product_line, shipping, tax, discount = order["order_items"]
    assert product_line["product"]["sku"] == "TSHIRT-S"
    assert product_line["price_per_unit"]["amount"] == 1990 and product_line["cost_per_unit"]["amount"] == 725
    assert "product" not in shipping and shipping["item_type"] == "SHIPPING"
    assert discount["discount"]["amount"] == 500


def test_unknown_property_and_wrong_type_are_rejected(api):
    base = {"contact_id": "1", "order_time": "2024-05-01T10:00:00Z", "order_title": "t", "order_type": "ONLINE"}
    response = api.post("/orders", json={**base, "order_items": [{"product_id": "1", "quantity": 1, "price": 3}]})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400 and body["status"] == "INVALID_ARGUMENT"
    assert body["message"].startswith("Unrecognized property: price")
    response = api.post("/orders", json={**base, "order_items": [{"product_id": "1", "quantity": "two"}]})
    assert response.status_code == 400 and "quantity" in response.json()["message"]
    response = api.post("/orders", json={**base, "order_time": "2024-05-01 10:00"})
    assert response.status_code == 400 and "order_time" in response.json()["message"]
    response = api.post("/orders", json={k: v for k, v in base.items() if k != "order_type"})
    assert response.status_code == 400 and "order_type" in response.json()["message"]


def test_product_rules(api):
    response = api.post("/orders", json={"contact_id": "1", "order_time": "2024-05-01T10:00:00Z",
                                         "order_title": "t", "order_type": "ONLINE",
                                         "order_items": [{"product_id": "999", "quantity": 1}]})
    assert response.status_code == 400 and "product_id" in response.json()["message"]
    response = api.post("/orders", json={"contact_id": "1", "order_time": "2024-05-01T10:00:00Z",
                                         "order_title": "t", "order_type": "ONLINE",
                                         "order_items": [{"item_type": "PRODUCT", "quantity": 1}]})
    assert response.status_code == 400 and "product_id" in response.json()["message"]
    response = api.post("/orders", json={"contact_id": "424242", "order_time": "2024-05-01T10:00:00Z",
                                         "order_title": "t", "order_type": "ONLINE"})
    assert response.status_code == 400 and "contact" in response.json()["message"]


def test_payments_follow_keap_rules(api, sandbox):
    order = new_order(api)  # 19.90 due
    pay = lambda **kw: api.post(f"/orders/{order['id']}/payments",  # noqa: E731
                                json={"apply_to_commissions": False, **kw})
    too_much = pay(payment_amount=19.91, payment_method_type="Cash")
    assert too_much.status_code == 400 and "balance" in too_much.json()["message"]
    unknown_type = pay(payment_amount=5, payment_method_type="Bitcoin")
    assert unknown_type.status_code == 400 and "Manual Payment Type" in unknown_type.json()["message"]
    assert pay(payment_amount=5).status_code == 400  # neither method id nor type
    other = api.post("/contacts", json={"email_addresses": [{"email": "x@example.com", "field": "EMAIL1"}]}).json()
    foreign = api.post("/orders", json={"contact_id": other["id"], "order_time": "2024-05-01T10:00:00Z",
                                        "order_title": "t", "order_type": "ONLINE",
                                        "order_items": [{"product_id": "1", "quantity": 1}]}).json()
    wrong_card = api.post(f"/orders/{foreign['id']}/payments",
                          json={"apply_to_commissions": False, "payment_amount": 1, "payment_method_id": "1"})
    assert wrong_card.status_code == 400 and "payment_method_id" in wrong_card.json()["message"]

    first = pay(payment_amount=10, payment_method_type="Check", notes="ext-pay-1",
                payment_time="2024-05-02T09:30:00Z")
    assert first.status_code == 201, first.text
    assert first.json()["payment_amount"] == 10.0 and first.json()["invoice_id"] == order["invoice_id"]
    assert api.get(f"/orders/{order['id']}").json()["total_due"]["amount"] == 990
    card = pay(payment_amount=9.90, payment_method_id="1")
    assert card.status_code == 201 and card.json()["transaction_id"]
    paid = api.get(f"/orders/{order['id']}").json()
    assert paid["status"] == "PAID" and paid["total_paid"]["amount"] == 1990 and paid["total_due"]["amount"] == 0
    listed = api.get(f"/orders/{order['id']}/payments").json()["invoice_order_payments"]
    assert [(p["amount"], p.get("note"), p["pay_status"]) for p in listed] == [
        (10.0, "ext-pay-1", "MANUAL_PAID"), (9.9, None, "APPROVED")]
    assert listed[0]["pay_time"] == "2024-05-02T09:30:00Z"
    assert pay(payment_amount=0.01, payment_method_type="Cash").status_code == 400  # nothing left to pay
    refused = api.delete(f"/orders/{order['id']}")
    assert refused.status_code == 400 and "transactions" in refused.json()["message"]


def test_delete_patch_and_add_item(api):
    order = new_order(api, notes="before")
    patched = api.patch(f"/orders/{order['id']}", params={"update_mask": "notes"},
                        json={"notes": "after", "order_title": "ignored by the mask"})
    assert patched.status_code == 200 and patched.json()["notes"] == "after"
    assert patched.json()["title"] == "Test order"
    bad_mask = api.patch(f"/orders/{order['id']}", params={"update_mask": "price"}, json={"notes": "x"})
    assert bad_mask.status_code == 400
    item = api.post(f"/orders/{order['id']}/items", json={"product_id": "4", "quantity": 2})
    assert item.status_code == 201 and item.json()["price_per_unit"]["amount"] == 1250
    assert api.get(f"/orders/{order['id']}").json()["total"]["amount"] == 1990 + 2500
    assert api.delete(f"/orders/{order['id']}").status_code == 204
    gone = api.get(f"/orders/{order['id']}")
    assert gone.status_code == 404 and gone.json()["status"] == "NOT_FOUND"


def test_custom_fields_written_by_id_filtered_by_field_name(api):
    field = ext_field(api)
    assert field["field_name"] == "_ExternalOrderID0" and field["record_type"] == "ORDER"
    second = ext_field(api, "Source shop")
    assert second["field_name"] == "_Sourceshop1"
    assert api.post("/orders/model/customFields", json={"label": "external order id",
                                                        "field_type": "TEXT"}).status_code == 400
    assert [f["id"] for f in api.get("/orders/model").json()["custom_fields"]] == [field["id"], second["id"]]
    order = new_order(api, custom_fields=[{"id": field["id"], "content": "SHOP-1001"}])
    new_order(api, custom_fields=[{"id": field["id"], "content": "SHOP-1002"}])
    found = api.get("/orders", params={"filter": "_externalorderid0==SHOP-1001"}).json()["orders"]
    assert [o["id"] for o in found] == [order["id"]]
    assert len(api.get("/orders", params={"filter": "_ExternalOrderID0==SHOP-10*"}).json()["orders"]) == 2
    unknown = api.post("/orders", json={"contact_id": "1", "order_time": "2024-05-01T10:00:00Z",
                                        "order_title": "t", "order_type": "ONLINE",
                                        "custom_fields": [{"id": "999", "content": "x"}]})
    assert unknown.status_code == 400 and "custom_fields" in unknown.json()["message"]
    patched = api.patch(f"/orders/{order['id']}", params={"update_mask": "custom_fields"},
                        json={"custom_fields": [{"id": second["id"], "content": "shopify"}]}).json()
    assert {c["id"]: c["content"] for c in patched["custom_fields"]} == {field["id"]: "SHOP-1001",
                                                                         second["id"]: "shopify"}


def test_order_filters(api):
    other = api.post("/contacts", json={"email_addresses": [{"email": "f@example.com", "field": "EMAIL1"}]}).json()
    mug = new_order(api, order_items=[{"product_id": "4", "quantity": 1}])
    theirs = new_order(api, contact_id=other["id"])
    api.post(f"/orders/{mug['id']}/payments", json={"apply_to_commissions": False, "payment_amount": 12.5,
                                                     "payment_method_type": "Cash"})
    ids = lambda f: [o["id"] for o in api.get("/orders", params={"filter": f}).json()["orders"]]  # noqa: E731
    assert ids("product_id==4") == [mug["id"]]
    assert ids(f"contact_id=={other['id']}") == [theirs["id"]]
    assert ids("paid==true") == [mug["id"]]
    assert ids(f"paid==false;contact_id=={other['id']}") == [theirs["id"]]
    assert ids(f"created_since_time=={mug['creation_time']}") == [mug["id"], theirs["id"]]
    assert ids("created_since_time==2999-01-01T00:00:00.000Z") == []
    assert ids(f"id>{mug['id']}") == [theirs["id"]]
    bad = api.get("/orders", params={"filter": "colour==red"})
    assert bad.status_code == 400 and "colour" in bad.json()["message"]
    assert api.get("/orders", params={"filter": "contact_id==1*"}).status_code == 400
    desc = api.get("/orders", params={"order_by": "id desc"}).json()["orders"]
    assert [o["id"] for o in desc] == [theirs["id"], mug["id"]]


def test_pagination_returns_every_item_once(api):
    made = [new_order(api)["id"] for _ in range(7)]
    seen, token, pages = [], None, 0
    while True:
        params = {"page_size": 3, **({"page_token": token} if token else {})}
        body = api.get("/orders", params=params).json()
        pages += 1
        seen += [o["id"] for o in body["orders"]]
        token = body.get("next_page_token")
        if not token:
            break
    assert pages == 3 and seen == made
    assert api.get("/orders", params={"page_size": 1001}).status_code == 400
    assert api.get("/orders", params={"page_token": "garbage"}).status_code == 400
    first = api.get("/orders", params={"page_size": 3}).json()["next_page_token"]
    other_filter = api.get("/orders", params={"page_size": 3, "page_token": first, "filter": "contact_id==1"})
    assert other_filter.status_code == 400
