"""Resolving contacts, products, plans and custom fields against the sandbox, with the shared Redis cache."""
from __future__ import annotations

import pytest

from tests.conftest import SANDBOX_KEY
from worker.keap import ApiKeyAuth, KeapClient
from worker.ledger import Ledger
from worker.contract import parse_order
from worker.steps import resolve
from worker.steps.base import OrderRejected, StepContext


@pytest.fixture
def ctx(sandbox, redis_client, key_prefix):
    return StepContext(keap=KeapClient(sandbox.base_url, ApiKeyAuth(SANDBOX_KEY)), ledger=Ledger(redis_client, key_prefix))


def order(**overrides):
    data = {"external_id": "r-1", "order_time": "2024-03-05T14:22:10Z", "customer": {"email": "New.Buyer@Example.com"},
            "items": [{"sku": "TSHIRT-M", "unit_price": "19.90"}]}
    return parse_order({**data, **overrides})


def calls(sandbox) -> int:
    return sandbox.stats()["total"]


def test_contact_is_created_once_then_found_in_the_cache(ctx, sandbox):
    first = resolve.contact_id(ctx, order())
    before = calls(sandbox)
    assert resolve.contact_id(ctx, order(external_id="r-2", customer={"email": "new.buyer@example.com"})) == first
    assert calls(sandbox) == before  # same email in another case: the cache answers


def test_existing_contact_is_found_not_overwritten(ctx, sandbox):
    contact = resolve.contact_id(ctx, order(customer={"email": "card.holder@example.com", "given_name": "Other"}))
    assert contact == "1"
    assert ctx.keap.contacts.get("1")["given_name"] != "Other"


def test_products_are_cached_for_every_worker(ctx, sandbox):
    ids = resolve.product_ids(ctx, order())
    before = calls(sandbox)
    other = StepContext(keap=ctx.keap, ledger=Ledger(ctx.ledger.redis, ctx.ledger.prefix))
    assert resolve.product_ids(other, order()) == ids and calls(sandbox) == before


def test_unknown_sku_and_missing_plan_are_the_operators_to_fix(ctx):
    with pytest.raises(OrderRejected, match=r"items\[0\].sku: SKU 'NOPE' is not a product in Keap"):
        resolve.product_ids(ctx, order(items=[{"sku": "NOPE", "unit_price": "1.00"}]))
    sub = order(items=[], subscriptions=[{"sku": "COFFEE-CLUB", "billing_cycle": "DAILY"}])
    with pytest.raises(OrderRejected, match=r"no active DAILY subscription plan in Keap \(it has: MONTHLY, YEARLY\)"):
        resolve.plan_id(ctx, sub, 0)


def test_problems_lists_every_refusal_and_asks_keap_once_per_unknown_sku(ctx, sandbox):
    bad = order(items=[{"sku": "NOPE", "unit_price": "1.00"}, {"sku": "NOPE", "unit_price": "2.00"}],
                payments=[{"amount": "1.00", "method": "Bitcoin"}],
                subscriptions=[{"sku": "MUG-CLASSIC", "billing_cycle": "MONTHLY"}])
    memo: dict = {}
    before = calls(sandbox)
    found = resolve.problems(ctx, bad, {"Cash", "Check"}, memo)
    assert len(found) == 4 and "payments[0].method: 'Bitcoin'" in found[3]
    assert calls(sandbox) - before == 2  # NOPE once, MUG-CLASSIC once
    assert resolve.problems(ctx, order(), {"Cash"}, memo) == []


def test_missing_custom_fields_are_created_once_or_refused(ctx, sandbox):
    fields = resolve.order_fields(ctx, order(), ["External Order ID", "Gift Note"])
    assert set(fields) == {"External Order ID", "Gift Note"} and fields["Gift Note"]["field_name"]
    before = calls(sandbox)
    assert resolve.order_fields(ctx, order(), ["Gift Note"]) == {"Gift Note": fields["Gift Note"]}
    assert calls(sandbox) == before
    strict = StepContext(keap=ctx.keap, ledger=ctx.ledger, create_missing_custom_fields=False)
    with pytest.raises(OrderRejected, match="no order custom field labelled 'Wrapping'"):
        resolve.order_fields(strict, order(), ["Wrapping"])
