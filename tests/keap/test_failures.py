"""Keap's failure modes over real HTTP: each status and fault to its error, with no sleeping and no retrying."""
import socket
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.conftest import SANDBOX_KEY
from tests.keap.test_resources import ORDER_TIME, order_body
from worker.keap import (
    ApiKeyAuth,
    KeapAuthError,
    KeapClient,
    KeapNotFound,
    KeapOutcomeUnknown,
    KeapQuotaExhausted,
    KeapRateLimited,
    KeapTransientError,
    KeapValidationError,
)


def test_wrong_key_is_auth_error_without_the_key(sandbox, session):
    client = KeapClient(sandbox.base_url, ApiKeyAuth("KeapAK-wrong-secret"), session=session)
    with pytest.raises(KeapAuthError) as info:
        client.contacts.get("1")
    assert info.value.status == 401 and "wrong-secret" not in info.value.message
    assert "GET /v2/contacts/{contact_id}" in info.value.message


def test_missing_record_is_not_found(client):
    with pytest.raises(KeapNotFound) as info:
        client.orders.get("999999")
    assert info.value.status == 404 and "GET /v2/orders/{order_id}" in info.value.message


def test_unknown_property_is_validation_error_with_keaps_words_only(client, recorder):
    body = order_body(order_title="Secret Customer Title")
    body["order_items"][0]["price"] = Decimal("19.90")  # v1's name; v2 says price_per_unit
    with recorder.exempt(), pytest.raises(KeapValidationError) as info:
        client.orders.create(body)
    assert info.value.status == 400
    assert "Unrecognized property: price" in info.value.message
    assert "Secret Customer" not in info.value.message


def test_payment_above_the_balance_is_refused(client):
    order = client.orders.create(order_body())
    with pytest.raises(KeapValidationError, match="exceeds the balance"):
        client.orders.add_payment(order["id"], {"payment_amount": Decimal("44.76"), "apply_to_commissions": False,
                                                "payment_method_type": "Cash", "payment_time": ORDER_TIME})
    assert client.orders.list_payments(order["id"]) == []


def test_429_burst_is_rate_limited_and_never_retried(sandbox, client):
    sandbox.set_faults(burst_429=2)
    started, calls = time.monotonic(), client.calls
    for _ in range(2):
        with pytest.raises(KeapRateLimited) as info:
            client.products.get("1")
        assert info.value.status == 429 and info.value.retry_after is not None
        assert not isinstance(info.value, KeapQuotaExhausted)
    assert client.products.get("1")["id"] == "1"
    assert client.calls - calls == 3 and time.monotonic() - started < 1.0


def test_5xx_is_transient_for_reads_and_unknown_for_writes(start_sandbox, session):
    # Not the shared fixture: its teardown rejects the injected 502/503 as statuses the spec does not declare.
    sandbox = start_sandbox(limits="off", faults={"error_rate": 1.0})
    client = KeapClient(sandbox.base_url, ApiKeyAuth(SANDBOX_KEY), session=session)
    with pytest.raises(KeapTransientError) as read:
        client.orders.get("1")
    assert type(read.value) is KeapTransientError and read.value.status in (500, 502, 503)
    with pytest.raises(KeapOutcomeUnknown) as write:
        client.orders.create(order_body())
    assert write.value.status in (500, 502, 503) and "reconcile" in write.value.message
    assert client.calls == 2


@pytest.mark.parametrize("stall_seconds", [2.0, 0.0])
def test_lost_answer_to_a_write_is_outcome_unknown_and_it_was_applied(sandbox, session, stall_seconds):
    client = KeapClient(sandbox.base_url, ApiKeyAuth(SANDBOX_KEY), session=session, timeout=(2.0, 0.3))
    field = client.orders.create_custom_field("External Order ID")
    sandbox.set_faults(commit_then_timeout_rate=1.0, stall_seconds=stall_seconds)
    with pytest.raises(KeapOutcomeUnknown) as info:
        client.orders.create(order_body(custom_fields=[{"id": field["id"], "content": "shop-lost"}]))
    assert info.value.status is None and "reconcile" in info.value.message
    # Reads are not affected by the fault, and reconciling finds what the lost write created.
    assert len(client.orders.find_by_custom_field(field["field_name"], "shop-lost")) == 1


def test_nothing_listening_is_transient_not_unknown(session):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = KeapClient(f"http://127.0.0.1:{port}/crm", ApiKeyAuth(SANDBOX_KEY), session=session)
    with pytest.raises(KeapTransientError) as info:
        client.orders.create(order_body())
    assert type(info.value) is KeapTransientError and "nothing was sent" in info.value.message
    assert client.last_limits is None


def test_limits_headers_reach_last_limits_and_on_response(start_sandbox, session):
    seen = []
    client = KeapClient(start_sandbox(limits="sak").base_url, ApiKeyAuth(SANDBOX_KEY), session=session,
                        on_response=lambda *args: seen.append(args))
    client.contacts.get("1")
    with pytest.raises(KeapNotFound):
        client.orders.get("424242")
    limits = client.last_limits
    assert (limits.throttle_limit, limits.throttle_window_seconds, limits.quota_limit) == (240, 60, 30000)
    assert limits.throttle_used == 2 and limits.quota_available == 29998
    assert [(m, path, status) for m, path, status, _ in seen] == [
        ("GET", "/v2/contacts/{contact_id}", 200), ("GET", "/v2/orders/{order_id}", 404)]
    assert seen[-1][3] is limits


@pytest.mark.parametrize("limits, error", [("2/min", KeapRateLimited), ("100/min,2/day", KeapQuotaExhausted)])
def test_over_the_minute_throttle_or_the_daily_quota(start_sandbox, session, limits, error):
    client = KeapClient(start_sandbox(limits=limits).base_url, ApiKeyAuth(SANDBOX_KEY), session=session)
    client.products.get("1")
    client.products.get("2")
    with pytest.raises(KeapRateLimited) as info:
        client.products.get("3")
    assert type(info.value) is error and info.value.status == 429
    if error is KeapQuotaExhausted:
        midnight = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                                             microsecond=0)
        assert info.value.resets_at == midnight and "park" in info.value.message
        assert 0 < info.value.retry_after <= 86400
    else:
        assert info.value.retry_after == 60.0 and info.value.limits.throttle_available == 0
