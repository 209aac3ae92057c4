"""The stores' webhooks in process on the real Redis: signatures before parsing, dedupe, create/paid in either
order, invalid orders noted, the WooCommerce ping, and hostile bodies (hypothesis) never a 500."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.web.conftest import (auth, dumps, shopify_headers, shopify_order, woo_headers, woo_order)


def ledger(client):
    return client.app.state.producer.ledger


def test_a_wrong_or_missing_signature_is_401_and_nothing_is_stored(client):
    body = dumps(shopify_order(1001))
    assert client.post("/webhooks/shopify", content=body,
                       headers=shopify_headers(body, secret="wrong")).status_code == 401
    assert client.post("/webhooks/shopify", content=body, headers={"X-Shopify-Topic": "orders/create"}
                       ).status_code == 401
    assert client.post("/webhooks/woocommerce", content=body, headers=woo_headers(body, secret="x")).status_code == 401
    assert ledger(client).get("shopify:1001") is None and ledger(client).problems() == []


def test_shopify_create_three_times_then_paid_is_one_order_with_one_payment(client):
    unpaid = dumps(shopify_order(1002, paid=False))
    for _ in range(3):
        answer = client.post("/webhooks/shopify", content=unpaid, headers=shopify_headers(unpaid, event="e-1"))
        assert answer.status_code == 200
    assert answer.json()["status"] == "duplicate"
    paid = dumps(shopify_order(1002))
    answer = client.post("/webhooks/shopify", content=paid, headers=shopify_headers(paid, "orders/paid", "e-2"))
    assert answer.json()["status"] == "payment added"
    stored = ledger(client).get("shopify:1002").message
    assert len(stored["payments"]) == 1
    # orders/updated with the same order, under a new event: nothing to do.
    answer = client.post("/webhooks/shopify", content=paid, headers=shopify_headers(paid, "orders/updated", "e-3"))
    assert answer.json()["status"] == "unchanged"


def test_shopify_paid_before_create_is_one_order_with_its_payment(client):
    paid, unpaid = dumps(shopify_order(1003)), dumps(shopify_order(1003, paid=False))
    assert client.post("/webhooks/shopify", content=paid, headers=shopify_headers(paid, "orders/paid", "p")
                       ).json()["status"] == "queued"
    assert client.post("/webhooks/shopify", content=unpaid, headers=shopify_headers(unpaid, "orders/create", "c")
                       ).json()["status"] == "unchanged"
    assert len(ledger(client).get("shopify:1003").message["payments"]) == 1


def test_an_invalid_or_changed_order_is_200_to_the_store_and_noted_for_an_operator(client):
    broken = shopify_order(1004)
    broken["line_items"][0]["sku"] = None
    body = dumps(broken)
    answer = client.post("/webhooks/shopify", content=body, headers=shopify_headers(body, event="bad"))
    assert answer.status_code == 200 and answer.json()["status"] == "invalid"
    problem = client.get("/v1/orders/shopify:1004", headers=auth()).json()["problem"]
    assert problem["kind"] == "invalid" and "line_items[0].sku" in problem["reason"]
    first, other = dumps(shopify_order(1005)), dumps(shopify_order(1005, email="other@example.com"))
    client.post("/webhooks/shopify", content=first, headers=shopify_headers(first, event="a"))
    answer = client.post("/webhooks/shopify", content=other, headers=shopify_headers(other, "orders/updated", "b"))
    assert answer.json()["status"] == "conflict" and ledger(client).problem("shopify:1005")["differences"] == [
        "customer.email"]
    test_order = dumps(shopify_order(1006, test=True))
    assert "skipped" in client.post("/webhooks/shopify", content=test_order,
                                    headers=shopify_headers(test_order, event="t")).json()["status"]


def test_woocommerce_ping_dedupe_and_update_with_the_payment(client):
    ping = client.post("/webhooks/woocommerce", content=b"webhook_id=12",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ping.status_code == 200 and ping.json()["status"] == "pong"
    created = dumps(woo_order(2001, paid=False))
    for _ in range(3):
        answer = client.post("/webhooks/woocommerce", content=created, headers=woo_headers(created))
    assert answer.json()["status"] == "duplicate"
    updated = dumps(woo_order(2001))
    answer = client.post("/webhooks/woocommerce", content=updated, headers=woo_headers(updated, "order.updated", "d2"))
    assert answer.json()["status"] == "payment added"
    assert len(ledger(client).get("woo:2001").message["payments"]) == 1


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=4), max_leaves=30)
_order_like = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=8) | st.integers(), "email": st.text(max_size=20) | st.none(),
    "line_items": st.lists(st.dictionaries(st.sampled_from(["sku", "quantity", "price", "title"]), _json)),
    "total_price": _json, "financial_status": st.sampled_from(["paid", "pending", "refunded"]) | _json,
    "created_at": st.text(max_size=30) | _json, "payment_gateway_names": _json, "customer": _json,
    "billing_address": _json, "shipping_lines": _json, "refunds": _json, "external_id": _json, "items": _json,
    "number": _json, "total": _json, "billing": _json, "date_created_gmt": _json})


@hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(st.binary(max_size=300), _json.map(dumps), _order_like.map(dumps)))
def test_hostile_bodies_are_never_a_500(client, body):
    for path, headers in (("/webhooks/shopify", shopify_headers(body, event="fuzz")),
                          ("/webhooks/woocommerce", woo_headers(body, delivery="fuzz")),
                          ("/v1/orders", {**auth(), "Content-Type": "application/json"})):
        answer = client.post(path, content=body, headers=headers)
        assert answer.status_code < 500, (path, answer.text)
    ledger(client).redis.delete(f"{ledger(client).prefix}:delivery:shopify:orders/create:fuzz",
                                f"{ledger(client).prefix}:delivery:woocommerce:fuzz")


def test_a_partial_payment_then_the_rest_is_two_payments_adding_up_to_the_total(client):
    partial = dumps(shopify_order(1007, financial_status="partially_paid", total_outstanding="14.80"))
    client.post("/webhooks/shopify", content=partial, headers=shopify_headers(partial, event="pp"))
    full = dumps(shopify_order(1007))
    for event in ("f1", "f2"):  # the second is a new event with the same order: nothing more to pay
        client.post("/webhooks/shopify", content=full, headers=shopify_headers(full, "orders/paid", event))
    payments = ledger(client).get("shopify:1007").message["payments"]
    assert [p["amount"] for p in payments] == ["30.00", "14.80"]


def test_store_lists_that_are_not_lists_are_invalid_orders_not_errors(client):
    for key in ("shipping_lines", "fee_lines", "coupon_lines", "tax_lines"):
        body = dumps({**woo_order(2100), key: True, "total_tax": "1.00", "discount_total": "1.00"})
        answer = client.post("/webhooks/woocommerce", content=body, headers=woo_headers(body, delivery=key))
        assert answer.status_code == 200, answer.text
