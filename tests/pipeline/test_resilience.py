"""Keap answers lost after the write was applied (commit-then-timeout) and 5xx: still one effect each."""
from __future__ import annotations

import time

import pytest

from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import keap_orders, typical_order


@pytest.fixture
def faults(keap_sandbox):
    yield keap_sandbox.set_faults
    keap_sandbox.set_faults()


@pytest.mark.parametrize("route", ["POST /rest/v2/orders", "POST /rest/v2/orders/{order_id}/payments",
                                   "POST /rest/v2/subscriptions"])
def test_lost_answer_after_a_write_is_reconciled_not_repeated(ctx, keap_sandbox, faults, ext, route, producer):
    order = typical_order(ext, subscriptions=[{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY"}])
    producer.enqueue_order(order)  # warms the caches; then the real test on a second order
    wait_until_finished(ctx.ledger, [ext])

    second = typical_order(f"{ext}-2", email=f"second-{ext}@example.com",
                           subscriptions=[{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY"}])
    # Every matching write is applied, then its answer is lost: only reconciliation can finish the order.
    faults(commit_then_timeout_rate=1.0, routes=[route])
    producer.enqueue_order(second)
    assert wait_until_finished(ctx.ledger, [f"{ext}-2"])[f"{ext}-2"] == "done"
    faults()

    [found] = keap_orders(ctx, f"{ext}-2")
    assert len(ctx.keap.orders.list_payments(found["id"])) == 1
    state = ctx.ledger.get(f"{ext}-2")
    assert len(ctx.keap.subscriptions.find(contact_id=state.results["contact_id"])) == 1
    assert state.attempts >= 6  # five steps, and at least one of them ran again


def test_server_errors_are_retried_until_keap_answers(ctx, faults, ext, producer):
    faults(error_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/payments"])
    producer.enqueue_order(typical_order(ext))
    deadline = time.monotonic() + 30
    while ctx.ledger.get(ext).attempts < 4 and time.monotonic() < deadline:  # the payment step failed twice
        time.sleep(0.02)
    faults()  # Keap is back
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    [found] = keap_orders(ctx, ext)
    assert len(ctx.keap.orders.list_payments(found["id"])) == 1


def test_an_outage_longer_than_the_retry_budget_fails_the_order_with_a_way_out(ctx, faults, ext, producer):
    faults(error_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/payments"])
    producer.enqueue_order(typical_order(ext))
    assert wait_until_finished(ctx.ledger, [ext], timeout=60)[ext] == "failed"
    faults()
    state = ctx.ledger.get(ext)
    assert state.error_step == "record_payment" and state.error_kind == "transient"
    assert "gave up after 6 attempts" in state.error and f"keap-orders retry {ext}" in state.error


def test_items_added_later_survive_a_lost_answer(ctx, faults, ext, producer):
    producer.enqueue_order(typical_order(ext, payments=[]))
    wait_until_finished(ctx.ledger, [ext])
    extra = [{"sku": "GRINDER-PRO", "quantity": 1, "unit_price": "129.00"},
             {"type": "FEE", "name": "Gift wrap", "quantity": 1, "unit_price": "2.50"}]
    faults(commit_then_timeout_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/items"])
    producer.enqueue_step("add_items", ext, items=extra)
    time.sleep(0.3)
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    faults()
    [found] = keap_orders(ctx, ext)
    lines = ctx.keap.orders.get(found["id"])["order_items"]
    assert len(lines) == 7
    assert sum((line.get("product") or {}).get("sku") == "GRINDER-PRO" for line in lines) == 1
    assert sum(line.get("name") == "Gift wrap" for line in lines) == 1
