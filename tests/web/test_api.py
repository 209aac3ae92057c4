"""The ingestion API in process on the real Redis: tokens, 202/200/409/422, reads, pages, problems, operator scope."""
from __future__ import annotations

from tests.e2e.conftest import order
from tests.web.conftest import OPERATOR, auth


def test_tokens_are_needed_and_several_work(client):
    assert client.post("/v1/orders", json=order("api-1")).status_code == 401
    assert client.post("/v1/orders", json=order("api-1"), headers=auth("wrong")).status_code == 401
    assert client.post("/v1/orders", json=order("api-1"), headers=auth("old-token")).status_code == 202
    # The operators' token reads and acts, but does not post orders; the ingest token does not act.
    assert client.post("/v1/orders", json=order("api-2"), headers=auth(OPERATOR)).status_code == 401
    assert client.post("/v1/orders/api-1/cancel", headers=auth()).status_code == 401
    assert client.get("/v1/orders/api-1", headers=auth(OPERATOR)).status_code == 200


def test_post_is_idempotent_on_the_external_id_and_a_conflict_names_the_fields(client):
    first = client.post("/v1/orders", json=order("api-3"), headers=auth())
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert first.headers["Location"] == "/v1/orders/api-3" == first.json()["status_url"]
    again = client.post("/v1/orders", json=order("api-3"), headers=auth())
    assert again.status_code == 200 and again.json()["accepted"] is False
    other = order("api-3", items=[{"sku": "TSHIRT-M", "quantity": 3, "unit_price": "19.90"}])
    conflict = client.post("/v1/orders", json=other, headers=auth())
    assert conflict.status_code == 409
    assert conflict.json()["differences"] == ["items (2 stored, 1 sent)"]
    shown = client.get("/v1/orders/api-3", headers=auth()).json()
    assert shown["status"] == "queued" and shown["problem"]["kind"] == "conflict"
    assert client.get("/v1/problems", headers=auth()).json()["problems"][0]["ref"] == "api-3"


def test_an_invalid_order_gets_the_clis_field_and_fix(client):
    answer = client.post("/v1/orders", json=order("api-4", items=[{"sku": "X", "quantity": 1}]), headers=auth())
    assert answer.status_code == 422
    error = answer.json()["errors"][0]
    assert error["field"] == "items[0].unit_price" and error["fix"]
    assert client.post("/v1/orders", content=b"{not json", headers=auth()).status_code == 400
    assert client.post("/v1/orders", content=b"[" * 5000, headers=auth()).status_code == 400
    too_big = client.app_settings.http_max_body_bytes + 1
    assert client.post("/v1/orders", content=b" " * too_big, headers=auth()).status_code == 413


def test_reads_pages_steps_retry_and_cancel(client):
    for n in range(5):
        assert client.post("/v1/orders", json=order(f"api-page-{n}", payments=[]), headers=auth()).status_code == 202
    seen, cursor = [], 0
    while True:
        page = client.get("/v1/orders", params={"status": "queued", "limit": 2, "cursor": cursor},
                          headers=auth()).json()
        seen += [row["external_id"] for row in page["orders"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert sorted(set(seen)) == [f"api-page-{n}" for n in range(5)]
    assert client.get("/v1/orders", params={"status": "nope"}, headers=auth()).status_code == 422
    payment = {"payments": [{"amount": "44.80", "method": "Cash", "external_id": "later-1"}]}
    assert client.post("/v1/orders/api-page-0/steps/record_payment", json=payment, headers=auth()).status_code == 202
    assert client.post("/v1/orders/api-page-0/steps/nope", json={}, headers=auth()).status_code == 404
    assert client.post("/v1/orders/unknown/steps/record_payment", json=payment, headers=auth()).status_code == 404
    assert client.post("/v1/orders/api-page-1/cancel", headers=auth(OPERATOR)).json()["status"] == "cancelled"
    assert client.post("/v1/orders/api-page-1/retry", headers=auth(OPERATOR)).status_code == 422  # cancelled: final
    assert client.get("/v1/orders/unknown", headers=auth()).status_code == 404
    assert "/v1/orders" in client.get("/openapi.json").json()["paths"]
    metrics = client.get("/metrics").text
    assert 'keap_orders_http_requests_total{route="/v1/orders",status="202"}' in metrics


def test_two_producers_racing_with_different_content_for_a_new_id_one_wins_the_other_hears_409(client):
    import threading

    from producers.enqueue import OrderConflict, Producer

    settings = client.app_settings
    outcomes: dict[str, list[str]] = {}

    def send(ext: str, quantity: int, gate: threading.Barrier) -> None:
        producer = Producer(settings)  # its own ledger and connection, as another process would have
        gate.wait()
        try:
            sent = producer.enqueue_order(order(ext, items=[{"sku": "TSHIRT-M", "quantity": quantity,
                                                              "unit_price": "19.90"}]), "live").sent
            outcomes.setdefault(ext, []).append("sent" if sent else "silently not sent")
        except OrderConflict:
            outcomes.setdefault(ext, []).append("conflict")
        except Exception as exc:  # shown in the assertion
            outcomes.setdefault(ext, []).append(repr(exc))

    for n in range(30):
        gate = threading.Barrier(2)
        threads = [threading.Thread(target=send, args=(f"race-{n}", q, gate)) for q in (3, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert {ext: sorted(found) for ext, found in outcomes.items()} == {f"race-{n}": ["conflict", "sent"]
                                                                       for n in range(30)}
