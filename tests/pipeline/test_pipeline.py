"""The order pipeline end to end: real worker, real Redis, sandbox over HTTP, read back through the Keap API."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest

from tests.pipeline.conftest import wait_until_finished
from worker.keap import money
from worker.tasks import TASKS


def typical_order(ext: str, email: str | None = None, **overrides) -> dict:
    order = {
        "external_id": ext,
        "order_time": "2024-03-05T14:22:10Z",
        "title": f"Order {ext}",
        "customer": {
            "email": email or f"{ext}@example.com", "given_name": "Ana", "family_name": "Lima",
            "billing_address": {"line1": "12 Oak St", "locality": "Austin", "region": "TX",
                                "postal_code": "78701", "country_code": "USA"},
            "shipping_address": {"line1": "500 Main St", "locality": "Dallas", "region": "TX",
                                 "postal_code": "75201", "country_code": "USA"},
        },
        "items": [
            {"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90", "unit_cost": "7.10"},
            {"sku": "MUG-CLASSIC", "quantity": 1, "unit_price": "12.50"},
            {"sku": "STICKER-PACK", "quantity": 3, "unit_price": "4.50"},
            {"type": "SHIPPING", "name": "UPS Ground", "quantity": 1, "unit_price": "5.00"},
            {"type": "TAX", "name": "TX sales tax", "quantity": 1, "unit_price": "3.70"},
        ],
        "payments": [{"amount": "74.50", "method": "Credit Card (Manual)", "external_id": f"ch-{ext}",
                      "paid_at": "2024-03-05T14:22:30Z", "notes": "Stripe charge"}],
        "custom_fields": {"Sales Channel": "Shopify", "Fulfillment": "UPS"},
    }
    order.update(overrides)
    return order


def keap_orders(ctx, ext):
    field = ctx.ledger.cache_get("orders-fields", ctx.external_id_label)
    assert field, "the external id custom field was never resolved"
    return ctx.keap.orders.find_by_custom_field(json.loads(field)["field_name"], ext)


def post_counts(sandbox) -> dict[str, int]:
    return {k: v for k, v in sandbox.stats()["requests"].items() if not k.startswith("GET")}


def test_typical_order_is_imported_once_with_everything(ctx, ext, producer):
    producer.enqueue_order(typical_order(ext), "live")
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"

    [found] = keap_orders(ctx, ext)
    order = ctx.keap.orders.get(found["id"])
    items = {(i["item_type"], i.get("product", {}).get("sku") if i.get("product") else i["name"]): i
             for i in order["order_items"]}
    assert items[("PRODUCT", "TSHIRT-M")]["quantity"] == 2
    assert money(items[("PRODUCT", "TSHIRT-M")]["price_per_unit"]) == Decimal("19.90")
    assert money(items[("PRODUCT", "TSHIRT-M")]["cost_per_unit"]) == Decimal("7.10")
    assert money(items[("SHIPPING", "UPS Ground")]["price_per_unit"]) == Decimal("5.00")
    assert money(order["total"]) == Decimal("74.50")
    assert money(order["total_paid"]) == Decimal("74.50")
    assert order["status"] == "PAID"
    payments = ctx.keap.orders.list_payments(found["id"])
    assert [Decimal(str(p["amount"])) for p in payments] == [Decimal("74.50")]
    contents = {cf["id"]: cf.get("content") for cf in order.get("custom_fields") or []}
    assert "Shopify" in contents.values() and "UPS" in contents.values() and ext in contents.values()

    state = ctx.ledger.get(ext)
    assert state.status == "done" and state.results["order_id"] == found["id"]


@pytest.mark.parametrize("probed", [True, False], ids=["probed", "unprobed"])
def test_call_budget_new_and_returning_customer(ctx, keap_sandbox, ext, producer, probed):
    """A typical order: at most 4 Keap calls for a new customer and 2 for a returning one (warm caches) once
    `doctor --probe` found the email search ignores case; unprobed, a new customer's address and phones follow in
    a PATCH after Keap confirmed it created the contact (one call more)."""
    from worker.steps import readings

    readings.store(ctx.ledger, {"email_search": "case-insensitive" if probed else None})
    warm = typical_order(f"{ext}-warm", email=f"warm-{ext}@example.com")
    producer.enqueue_order(warm)
    wait_until_finished(ctx.ledger, [warm["external_id"]])

    before = keap_sandbox.stats()["total"]
    producer.enqueue_order(typical_order(f"{ext}-new", email=f"new-{ext}@example.com"))
    assert wait_until_finished(ctx.ledger, [f"{ext}-new"])[f"{ext}-new"] == "done"
    new_customer = keap_sandbox.stats()["total"] - before

    before = keap_sandbox.stats()["total"]
    producer.enqueue_order(typical_order(f"{ext}-again", email=f"new-{ext}@example.com"))
    assert wait_until_finished(ctx.ledger, [f"{ext}-again"])[f"{ext}-again"] == "done"
    returning = keap_sandbox.stats()["total"] - before
    readings.store(ctx.ledger, {"email_search": None})

    assert new_customer <= (4 if probed else 5), new_customer
    assert returning <= 2, returning


def test_each_step_delivered_twice_has_one_effect(ctx, keap_sandbox, ext, producer):
    order = typical_order(ext, subscriptions=[{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY"}])
    # The whole chain twice at once (a duplicate produce), then every step twice more, concurrently.
    producer.enqueue_order(order, "live")
    producer.enqueue_order(order, "live", force=True)
    wait_until_finished(ctx.ledger, [ext])
    writes_after_first = post_counts(keap_sandbox)

    for task in TASKS.values():
        task.apply_async(args=(ext,), queue=ctx_queue())
        task.apply_async(args=(ext,), queue=ctx_queue())
    time.sleep(0.5)
    wait_until_finished(ctx.ledger, [ext])
    assert post_counts(keap_sandbox) == writes_after_first  # no second write of anything

    [found] = keap_orders(ctx, ext)
    assert len(ctx.keap.orders.list_payments(found["id"])) == 1
    state = ctx.ledger.get(ext)
    subs = ctx.keap.subscriptions.find(contact_id=state.results["contact_id"])
    assert len(subs) == 1 and state.status == "done"


def ctx_queue() -> str:
    from tests.pipeline.conftest import ENV

    return ENV["LIVE_QUEUE"]


def test_concurrent_duplicate_deliveries_of_create_order(ctx, ext, producer):
    producer.enqueue_order(typical_order(ext, payments=[]))
    threads = [threading.Thread(target=TASKS["create_order"].apply_async, kwargs={"args": (ext,), "queue": ctx_queue()})
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    wait_until_finished(ctx.ledger, [ext])
    assert len(keap_orders(ctx, ext)) == 1


def test_duplicate_produce_is_refused(ctx, ext, producer):
    first = producer.enqueue_order(typical_order(ext))
    second = producer.enqueue_order(typical_order(ext))
    assert first.sent and not second.sent and second.status in ("queued", "running", "done")
    wait_until_finished(ctx.ledger, [ext])
    third = producer.enqueue_order(typical_order(ext))
    assert not third.sent and third.status == "done"


def test_unknown_sku_fails_with_an_actionable_message(ctx, ext, producer):
    order = typical_order(ext)
    order["items"][1]["sku"] = "NO-SUCH-SKU"
    producer.enqueue_order(order)
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    state = ctx.ledger.get(ext)
    assert state.error_step == "create_order" and state.error_kind == "rejected"
    assert "items[1].sku" in state.error and "NO-SUCH-SKU" in state.error
    assert "create a product" in state.error and f"keap-orders retry {ext}" in state.error
    assert "order_id" not in state.results


def test_failed_payment_is_fixed_and_retried_from_that_step(ctx, keap_sandbox, ext, producer):
    order = typical_order(ext)
    order["payments"][0]["method"] = "Wire Transfer"  # not a manual payment type of the account
    producer.enqueue_order(order)
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "failed"
    state = ctx.ledger.get(ext)
    assert state.error_step == "record_payment" and "payments[0]" in state.error
    order_creates = keap_sandbox.stats()["requests"].get("POST /rest/v2/orders 201", 0)

    order["payments"][0]["method"] = "Check"
    producer.retry_order(ext, order=order)
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    assert keap_sandbox.stats()["requests"].get("POST /rest/v2/orders 201", 0) == order_creates
    [found] = keap_orders(ctx, ext)
    assert len(ctx.keap.orders.list_payments(found["id"])) == 1


def test_another_service_adds_a_payment_to_an_existing_order(ctx, ext, producer):
    producer.enqueue_order(typical_order(ext, payments=[]))
    wait_until_finished(ctx.ledger, [ext])
    payment = {"amount": "30.00", "method": "Cash", "external_id": f"late-{ext}"}
    producer.enqueue_step("record_payment", ext, payments=[payment])
    producer.enqueue_step("record_payment", ext, payments=[payment])  # the same payment again
    time.sleep(0.5)
    wait_until_finished(ctx.ledger, [ext])
    [found] = keap_orders(ctx, ext)
    payments = ctx.keap.orders.list_payments(found["id"])
    assert [Decimal(str(p["amount"])) for p in payments] == [Decimal("30.00")]


def test_enqueue_step_for_an_unknown_order_says_what_to_do(ctx, producer):
    with pytest.raises(LookupError, match="enqueue_order first"):
        producer.enqueue_step("record_payment", "never-seen")


def test_live_order_does_not_wait_behind_a_backfill(ctx, ext, producer):
    backfill = [f"{ext}-b{i}" for i in range(40)]
    for bid in backfill:
        producer.enqueue_order(typical_order(bid, email=f"{bid}@example.com"), "backfill")
    producer.enqueue_order(typical_order(f"{ext}-live"), "live")
    wait_until_finished(ctx.ledger, [f"{ext}-live"])
    backfill_done = sum(s == "done" for s in ctx.ledger.statuses(backfill).values())
    wait_until_finished(ctx.ledger, backfill)
    assert backfill_done < len(backfill) // 2, f"the live order finished after {backfill_done} backfill orders"
