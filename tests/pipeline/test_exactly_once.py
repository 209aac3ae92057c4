"""Exactly once when a lookup matches loosely, when producers race, when locks would expire, and no silent wrong
data — the cases of issue 7, each against the real worker and the sandbox (the slow-write case, which needs its
own client timeout, is in tests/e2e/test_exactly_once.py)."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
import redis as redis_lib

from admin.verify import verify_file
from producers.enqueue import Producer
from tests.conftest import REDIS_URL
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import typical_order
from worker.ledger import Ledger


@pytest.fixture
def faults(keap_sandbox):
    yield keap_sandbox.set_faults
    keap_sandbox.set_faults()


def order_id(ctx, ext) -> str:
    return ctx.ledger.get(ext).results["order_id"]


def payments(ctx, ext) -> list[dict]:
    return ctx.keap.orders.list_payments(order_id(ctx, ext))


def wait_running(ctx, ext, step, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = ctx.ledger.get(ext)
        if state and state.status == "running" and state.step == step:
            return
        time.sleep(0.05)
    raise AssertionError(f"{ext} never ran {step}")


# 2 ---------------------------------------------------------------------------------------------------------------
def test_reconciliation_never_links_another_customers_order(ctx, producer, faults, ext):
    first, second = f"{ext}-CASE-7a", f"{ext}-case-7A"  # equal to Keap's case-insensitive filter
    producer.enqueue_order(typical_order(first, email=f"a-{ext}@example.com"))
    wait_until_finished(ctx.ledger, [first])
    faults(commit_then_timeout_rate=1.0, routes=["POST /rest/v2/orders"])
    producer.enqueue_order(typical_order(second, email=f"b-{ext}@example.com"))
    assert wait_until_finished(ctx.ledger, [second])[second] == "done"
    faults()
    assert order_id(ctx, first) != order_id(ctx, second)
    assert len(payments(ctx, first)) == 1 and len(payments(ctx, second)) == 1
    keap_b = ctx.keap.orders.get(order_id(ctx, second))
    assert keap_b["contact"]["id"] == ctx.ledger.get(second).results["contact_id"]


# 3 ---------------------------------------------------------------------------------------------------------------
def test_two_producers_adding_to_one_order_at_once_both_land(ctx, producer, settings, ext):
    ids = [f"{ext}-{i}" for i in range(12)]
    for one in ids:
        producer.enqueue_order(typical_order(one, payments=[]))
    wait_until_finished(ctx.ledger, ids)
    producers = [Producer(settings, Ledger(redis_lib.Redis.from_url(REDIS_URL), settings.key_prefix)) for _ in "ab"]
    cash = {"amount": "10.00", "method": "Cash", "external_id": "p-cash"}
    check = {"amount": "20.00", "method": "Check", "external_id": "p-check"}
    threads = [threading.Thread(target=p.enqueue_step, args=("record_payment", one), kwargs={"payments": [payment]})
               for one in ids for p, payment in zip(producers, (cash, check))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until_finished(ctx.ledger, ids)
    assert [len(ctx.ledger.get(one).message["payments"]) for one in ids] == [2] * 12
    assert [sorted(Decimal(str(p["amount"])) for p in payments(ctx, one)) for one in ids] == \
        [[Decimal("10"), Decimal("20")]] * 12


# 4 ---------------------------------------------------------------------------------------------------------------
def test_a_step_sent_on_its_own_does_not_hide_a_failure(ctx, producer, ext):
    producer.enqueue_order(typical_order(ext, payments=[{"amount": "10.00", "method": "Bitcoin"}]))
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    producer.enqueue_step("set_custom_fields", ext, custom_fields={"Gift": "yes"})
    time.sleep(0.2)
    wait_until_finished(ctx.ledger, [ext])
    state = ctx.ledger.get(ext)
    assert (state.status, state.error_step) == ("failed", "record_payment")
    assert state.results.get("field:Gift") == '"yes"'  # the step itself did its work
    assert ext in ctx.ledger.ids_with_status("failed", 10_000)
    fixed = typical_order(ext, payments=[{"amount": "10.00", "method": "Cash"}], custom_fields={"Gift": "yes"})
    producer.retry_order(ext, order=fixed)
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"


# 5 ---------------------------------------------------------------------------------------------------------------
def test_locks_outlive_slow_keap_calls(ctx, producer, faults, ext, settings):
    # Keap slower than a lease: only renewal keeps the second order of this new customer from creating it again.
    assert settings.lease_seconds < 5
    faults(latency_ms=5000, routes=["POST /rest/v2/contacts"])
    same = f"slow-{ext}@example.com"
    for suffix in ("a", "b"):
        producer.enqueue_order(typical_order(f"{ext}-{suffix}", email=same, payments=[]))
    wait_until_finished(ctx.ledger, [f"{ext}-a", f"{ext}-b"])
    contacts = {ctx.ledger.get(f"{ext}-{s}").results["contact_id"] for s in "ab"}
    assert len(contacts) == 1 and ctx.ledger.get(f"{ext}-a").status == "done"


def test_an_operator_retry_during_a_slow_payment_pays_once(ctx, producer, faults, ext):
    two = [{"amount": "30.00", "method": "Cash", "notes": "first"}, {"amount": "44.50", "method": "Check"}]
    faults(latency_ms=5000, routes=["POST /rest/v2/orders/{order_id}/payments"])  # longer than a lease
    producer.enqueue_order(typical_order(ext, payments=two))
    wait_running(ctx, ext, "record_payment")
    producer.retry_order(ext)  # an impatient operator
    time.sleep(0.5)
    assert wait_until_finished(ctx.ledger, [ext], timeout=120)[ext] == "done"
    faults()
    assert sorted(Decimal(str(p["amount"])) for p in payments(ctx, ext)) == [Decimal("30"), Decimal("44.5")]


# 6 ---------------------------------------------------------------------------------------------------------------
def test_a_payment_without_an_id_is_the_same_payment_in_any_position(ctx, producer, ext):
    two = [{"amount": "30.00", "method": "Cash", "notes": "till 1"}, {"amount": "44.50", "method": "Check"}]
    producer.enqueue_order(typical_order(ext, payments=two))
    wait_until_finished(ctx.ledger, [ext])
    corrected = typical_order(ext, payments=two[::-1], custom_fields={"Sales Channel": "Shopify POS"})
    producer.retry_order(ext, order=corrected)  # a corrected file lists them the other way round
    time.sleep(0.2)
    wait_until_finished(ctx.ledger, [ext])
    producer.enqueue_step("record_payment", ext, payments=[dict(two[1])])  # another producer sends one again
    time.sleep(0.2)
    wait_until_finished(ctx.ledger, [ext])
    assert len(payments(ctx, ext)) == 2 and len(ctx.ledger.get(ext).message["payments"]) == 2


# 7 ---------------------------------------------------------------------------------------------------------------
def test_the_same_plan_bought_in_two_orders_is_two_subscriptions(ctx, producer, ext, tmp_path):
    email = f"club-{ext}@example.com"
    club = [{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY"}]
    orders = [typical_order(f"{ext}-{n}", email=email, subscriptions=club) for n in (1, 2)]
    for one in orders:
        producer.enqueue_order(one)
        wait_until_finished(ctx.ledger, [one["external_id"]])
    subs = [ctx.ledger.get(o["external_id"]).results["subscription:0"] for o in orders]
    assert subs[0] != subs[1]
    for sub, one in zip(subs, orders):
        fields = ctx.keap.subscriptions.get(sub)["custom_fields"]
        assert one["external_id"] in [f["content"] for f in fields]
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    assert verify_file(path, None, ctx) == (2, [])
    # verify catches a subscription linked to the wrong order
    ctx.ledger.record(orders[1]["external_id"], {"subscription:0": subs[0]})
    checked, problems = verify_file(path, None, ctx)
    assert any("another order" in p for p in problems), problems


# 8 ---------------------------------------------------------------------------------------------------------------
def test_cancelling_a_running_order_stops_it_for_good(ctx, producer, faults, ext, keap_sandbox):
    faults(latency_ms=2000, routes=["POST /rest/v2/orders"])
    producer.enqueue_order(typical_order(ext))
    wait_running(ctx, ext, "create_order")
    assert ctx.ledger.cancel(ext) == "running"
    time.sleep(3)  # the running call ends; nothing after it runs, and nothing writes "running" or "done" back
    faults()
    state = ctx.ledger.get(ext)
    assert state.status == "cancelled" and state.results.get("order_id")  # the create had been sent: it stays
    assert payments(ctx, ext) == []
    assert not producer.enqueue_order(typical_order(ext)).sent


# no silent wrong data -------------------------------------------------------------------------------------------
def test_an_order_whose_keap_total_differs_is_stopped_before_any_payment(ctx, producer, ext):
    producer.enqueue_order(typical_order(ext, promo_codes=["SAVE10"]))  # Keap takes 10 % off; the file did not
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    state = ctx.ledger.get(ext)
    assert state.error_step == "create_order" and "total as 67.92, the order says 74.50" in state.error
    assert payments(ctx, ext) == []


def test_a_subscription_billed_another_amount_stops_the_order(ctx, producer, faults, ext):
    from worker.steps import readings

    # The probe said currency units, Keap reads cents: the read-back agrees (20 for 20.00), the first invoice's
    # total (a CurrencyValue, unambiguous) does not, and the order stops there.
    faults(readings=["billing-cents"])
    readings.store(ctx.ledger, {"billing_amount_unit": "currency"})
    try:
        producer.enqueue_order(typical_order(ext, subscriptions=[{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY",
                                                                   "billing_amount": "20.00"}]))
        assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    finally:
        readings.store(ctx.ledger, {"billing_amount_unit": None})
    error = ctx.ledger.get(ext).error
    assert "for 0.20 (Keap order" in error and "the order says 20.00" in error and "billing amount" in error


def test_a_declined_card_is_a_failure_not_a_payment(ctx, producer, faults, ext):
    faults(decline_rate=1.0)
    charge = [{"amount": "74.50", "charge_payment_method_id": "1"}]
    producer.enqueue_order(typical_order(ext, email="card.holder@example.com", payments=charge))
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    state = ctx.ledger.get(ext)
    assert "declined the charge" in state.error and not any(k.startswith("payment:") for k in state.results)
    keap = ctx.keap.orders.get(order_id(ctx, ext))
    assert keap["total_paid"]["amount"] == 0
