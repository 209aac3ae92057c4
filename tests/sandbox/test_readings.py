"""Each reading of what Keap leaves undocumented, played by the sandbox over HTTP, next to its default."""
from __future__ import annotations

import subprocess
import sys

import pytest

from sandbox.server import Sandbox
from tests.sandbox.conftest import Api, new_order

SHIP = {"item_type": "SHIPPING", "name": "Post", "quantity": 1, "price_per_unit": 5.0}
DISCOUNT = {"item_type": "DISCOUNT", "name": "Store discount", "quantity": 1, "price_per_unit": 2.0}


@pytest.fixture(params=[False, True], ids=["default", "reading"])
def played(request, sandbox):
    """(api, playing): the same checks run under the default and under the reading the test names."""
    def switch(name: str):
        sandbox.set_faults(readings=[name] if request.param else [])
        return Api(sandbox), request.param
    return switch


def test_decline_words(played, sandbox):
    api, playing = played("decline-words")
    sandbox.set_faults(readings=["decline-words"] if playing else [], decline_rate=1.0)
    order = new_order(api)
    answer = api.post(f"/orders/{order['id']}/payments", json={"payment_amount": 1.0, "apply_to_commissions": False,
                                                                "payment_method_id": "1"}).json()
    assert answer["payment_status_message"] == ("Do Not Honor" if playing else "DECLINED")
    assert [p["pay_status"] for p in api.get(f"/orders/{order['id']}/payments").json()["invoice_order_payments"]] \
        == ["FAILED"]
    txn = api.get("/sales/transactions", params={"filter": f"order_id=={order['id']}"}).json()["transactions"]
    assert [(t["is_successful"], t["transaction_method"], t["payment_id"]) for t in txn] == [
        (False, "CAPTURE", answer["id"])]


def test_billing_cents(played):
    api, playing = played("billing-cents")
    sub = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": "1", "billing_amount": 2000,
                                           "allow_duplicate": True}).json()
    assert sub["billing_amount"] == 2000  # what was sent comes back either way: the read-back cannot tell
    plain = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": "1",
                                             "allow_duplicate": True}).json()
    assert plain["billing_amount"] == (2500 if playing else 25.0)  # the plan price, 25.00
    invoice = api.post(f"/subscriptions/{sub['id']}:invoice").json()
    assert invoice["total"]["amount"] == (2000 if playing else 200000)  # the invoice is unambiguous (cents)


def test_email_case_sensitive(played):
    api, playing = played("email-case-sensitive")
    found = api.get("/contacts", params={"filter": "email==CARD.holder@example.com"}).json()["contacts"]
    assert len(found) == (0 if playing else 1)
    created = api.post("/contacts", params={"duplicate_option": "Email"},
                       json={"email_addresses": [{"email": "Card.Holder@example.com", "field": "EMAIL1"}]})
    assert (created.status_code, created.json()["id"]) == (200, "1")  # the duplicate check ignores case either way


def test_no_notes(played):
    api, playing = played("no-notes")
    order = new_order(api)
    api.post(f"/orders/{order['id']}/payments", json={"payment_amount": 1.0, "apply_to_commissions": False,
                                                       "payment_method_type": "Cash", "notes": "[mark]"})
    listed = api.get(f"/orders/{order['id']}/payments").json()["invoice_order_payments"]
    assert ("note" in listed[0]) is not playing


def test_no_productless_lines(played):
    api, playing = played("no-productless-lines")
    answer = api.post("/orders", json={"contact_id": "1", "order_time": "2024-05-01T10:00:00Z", "order_title": "t",
                                       "order_type": "ONLINE", "order_items": [{"product_id": "1", "quantity": 1},
                                                                               SHIP]})
    assert answer.status_code == (400 if playing else 201)
    if playing:
        assert "product_id" in answer.json()["message"]


def test_promo_applied(played):
    api, playing = played("promo-applied")
    order = new_order(api, order_items=[{"product_id": "1", "quantity": 1, "price_per_unit": 10.0}, DISCOUNT],
                      promo_codes=["SAVE10"])
    assert order["total"]["amount"] == (700 if playing else 800)
    alone = new_order(api, order_items=[{"product_id": "1", "quantity": 1, "price_per_unit": 10.0}],
                      promo_codes=["SAVE10"])
    assert alone["total"]["amount"] == 900  # without discount lines the code applies either way


def test_no_subscription_fields(played):
    api, playing = played("no-subscription-fields")
    sub = api.post("/subscriptions", json={"contact_id": "1", "subscription_plan_id": "3", "allow_duplicate": True})
    listed = api.get("/subscriptions").json()["subscriptions"]
    assert ("custom_fields" in listed[0]) is not playing
    assert "custom_fields" in api.get(f"/subscriptions/{sub.json()['id']}").json()


def test_no_custom_field_filter(played):
    api, playing = played("no-custom-field-filter")
    field = api.post("/orders/model/customFields", json={"label": "Ext", "field_type": "TEXT"}).json()
    answer = api.get("/orders", params={"filter": f"{field['field_name']}==x"})
    assert answer.status_code == (400 if playing else 200)


def test_unknown_readings_are_refused(sandbox, api):
    with pytest.raises(ValueError, match="known: decline-words"):
        Sandbox(readings="billing-dollars")
    bad = sandbox.set_faults
    with pytest.raises(ValueError):
        bad(readings=["nope"])
    cli = subprocess.run([sys.executable, "-m", "sandbox", "--port", "0", "--reading", "nope"], capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode == 2 and "unknown reading(s) ['nope']" in cli.stderr
