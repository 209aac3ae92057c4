"""The step runner without Celery: claim, run, and how each kind of end moves the order (sandbox over HTTP)."""
from __future__ import annotations

import pytest

from tests.conftest import SANDBOX_KEY
from worker import pipeline, runner
from worker.ledger import Ledger
from worker.settings import Settings
from worker.steps.base import StepContext


@pytest.fixture
def settings():
    return Settings(settle_seconds=1, settle_checks=2, lease_seconds=2, max_retries=1, broker_retry_max_seconds=5,
                    queued_stall_seconds=60, quota_reset_spread_seconds=0)


@pytest.fixture
def ctx(sandbox, redis_client, key_prefix, settings):
    from worker.keap import ApiKeyAuth, KeapClient

    return StepContext(keap=KeapClient(sandbox.base_url, ApiKeyAuth(SANDBOX_KEY)), ledger=Ledger(redis_client, key_prefix),
                       settle_seconds=settings.settle_seconds, settle_checks=settings.settle_checks,
                       lease_seconds=settings.lease_seconds)


def order(ext: str, **overrides) -> dict:
    return {"external_id": ext, "order_time": "2024-03-05T14:22:10Z", "customer": {"email": f"{ext}@example.com"},
            "items": [{"sku": "TSHIRT-M", "quantity": 1, "unit_price": "19.90"}],
            "payments": [{"amount": "19.90", "method": "Cash"}], **overrides}


def register(ctx, ext, **overrides):
    from worker.contract import parse_order

    message = parse_order(order(ext, **overrides)).model_dump(mode="json")
    return ctx.ledger.register(ext, message, "live", first_step="create_order")[3]


def test_a_chain_step_moves_the_order_to_the_next_step(ctx, settings):
    ticket = register(ctx, "r-1")
    assert runner.run_step(ctx, settings, "create_order", "r-1", ticket=ticket) == runner.NEXT
    state = ctx.ledger.get("r-1")
    assert (state.status, state.step) == ("queued", "add_items") and state.results["order_id"]
    for step in pipeline.STEP_NAMES[1:-1]:
        assert runner.run_step(ctx, settings, step, "r-1", ticket=ticket) == runner.NEXT
    assert runner.run_step(ctx, settings, pipeline.LAST, "r-1", ticket=ticket) == runner.STOP
    assert ctx.ledger.get("r-1").status == "done"


def test_a_refused_order_fails_with_what_to_do_and_cuts_the_chain(ctx, settings):
    ticket = register(ctx, "r-2", items=[{"sku": "NOPE", "unit_price": "1.00"}], payments=[])
    assert runner.run_step(ctx, settings, "create_order", "r-2", ticket=ticket) == runner.STOP
    state = ctx.ledger.get("r-2")
    assert (state.status, state.error_step, state.error_kind) == ("failed", "create_order", "rejected")
    assert "SKU 'NOPE' is not a product in Keap" in state.error and "keap-orders retry r-2" in state.error


def test_a_lost_answer_keap_applied_is_found_at_once(ctx, settings, sandbox):
    ticket = register(ctx, "r-3a")
    sandbox.set_faults(commit_then_timeout_rate=1.0, routes=["POST /rest/v2/orders"])
    assert runner.run_step(ctx, settings, "create_order", "r-3a", ticket=ticket).action == "retry"
    sandbox.set_faults()
    writes = lambda: {k: v for k, v in sandbox.stats()["requests"].items() if k.startswith("POST ")}  # noqa: E731
    before = writes()
    # Inside the settle time, the lookup finds the order Keap applied: recorded, the chain goes on, nothing written.
    assert runner.run_step(ctx, settings, "create_order", "r-3a", ticket=ticket, failures=1) == runner.NEXT
    state = ctx.ledger.get("r-3a")
    assert state.results["order_id"] and not state.intents and writes() == before


def test_a_lost_answer_parks_the_order_until_it_can_no_longer_land(ctx, settings, sandbox):
    ticket = register(ctx, "r-3")
    # Keap applies the write later than the first lookup (a late commit): nothing found yet is no proof.
    sandbox.set_faults(late_commit_rate=1.0, late_commit_seconds=60, routes=["POST /rest/v2/orders"])
    outcome = runner.run_step(ctx, settings, "create_order", "r-3", ticket=ticket)
    assert outcome.action == "retry" and outcome.failures == 1  # the unanswered write is a transient failure
    sandbox.set_faults()
    assert "order_id" in ctx.ledger.get("r-3").intents
    # The retry comes back inside the settle time: it must not write, and waits instead.
    assert runner.run_step(ctx, settings, "create_order", "r-3", ticket=ticket, failures=1).action == "retry"
    assert ctx.ledger.get("r-3").status == "queued" and "order_id" not in ctx.ledger.get("r-3").results


def test_a_long_wait_is_parked_outside_the_broker(ctx, settings, sandbox):
    ticket = register(ctx, "r-4")
    sandbox.set_faults(late_commit_rate=1.0, late_commit_seconds=60, routes=["POST /rest/v2/orders"])
    runner.run_step(ctx, settings, "create_order", "r-4", ticket=ticket)
    sandbox.set_faults()
    long = Settings(**{**settings.model_dump(), "settle_seconds": 600, "broker_retry_max_seconds": 1})
    slow_ctx = StepContext(keap=ctx.keap, ledger=ctx.ledger, settle_seconds=600, lease_seconds=2)
    assert runner.run_step(slow_ctx, long, "create_order", "r-4", ticket=ticket, failures=1) == runner.STOP
    state = ctx.ledger.get("r-4")
    assert state.status == "waiting" and state.parked_reason.startswith("settling")
    assert state.parked_until > ctx.ledger.now() + 500
    assert [ext for ext, when in ctx.ledger.iter_watched() if ext == "r-4"] == ["r-4"]


def test_a_second_delivery_waits_for_the_lease(ctx, settings):
    ticket = register(ctx, "r-5")
    assert ctx.ledger.claim("r-5", "create_order", "other-worker", 5, ticket, ("create_order",))[0] == "ok"
    outcome = runner.run_step(ctx, settings, "create_order", "r-5", ticket=ticket)
    assert outcome.action == "retry" and outcome.countdown <= 5
    assert "order_id" not in ctx.ledger.get("r-5").results


def test_a_stale_or_cancelled_message_does_nothing(ctx, settings, sandbox):
    old = register(ctx, "r-6")
    ctx.ledger.register("r-6", ctx.ledger.get("r-6").message, "live", first_step="create_order", force=True)
    calls = sandbox.stats()["total"]
    assert runner.run_step(ctx, settings, "create_order", "r-6", ticket=old) == runner.STOP
    ticket = register(ctx, "r-7")
    ctx.ledger.cancel("r-7")
    assert runner.run_step(ctx, settings, "create_order", "r-7", ticket=ticket) == runner.STOP
    assert sandbox.stats()["total"] == calls and ctx.ledger.get("r-7").status == "cancelled"


def test_a_step_sent_on_its_own_never_finishes_or_unfails_an_order(ctx, settings):
    ticket = register(ctx, "r-8", payments=[{"amount": "19.90", "method": "Bitcoin"}])
    for step in ("create_order", "add_items", "record_payment"):
        runner.run_step(ctx, settings, step, "r-8", ticket=ticket)
    failed = ctx.ledger.get("r-8")
    assert (failed.status, failed.error_step) == ("failed", "record_payment")
    assert runner.run_step(ctx, settings, "set_custom_fields", "r-8") == runner.STOP
    after = ctx.ledger.get("r-8")
    assert (after.status, after.error_step, after.error) == ("failed", "record_payment", failed.error)


def test_a_bug_is_recorded_for_the_operator_and_raised(ctx, settings, monkeypatch):
    ticket = register(ctx, "r-9")

    def bug(ctx, order):
        raise KeyError("boom")

    monkeypatch.setattr("worker.steps.resolve.contact_id", bug)  # a bug inside a step, not a Keap answer
    with pytest.raises(KeyError):
        runner.run_step(ctx, settings, "create_order", "r-9", ticket=ticket)
    state = ctx.ledger.get("r-9")
    assert state.status == "failed" and state.error_kind == "internal" and "KeyError" in state.error


def test_a_transient_error_is_shown_as_its_cause_not_a_class_name(ctx, settings, sandbox):
    ticket = register(ctx, "r-cause")
    sandbox.set_faults(error_rate=1.0)
    parked = Settings(**{**settings.model_dump(), "max_retries": 5, "broker_retry_max_seconds": 0})
    try:
        assert runner.run_step(ctx, parked, "create_order", "r-cause", ticket=ticket) == runner.STOP
    finally:
        sandbox.set_faults()
    reason = ctx.ledger.get("r-cause").parked_reason
    assert reason.startswith("Keap answered HTTP 50") and reason.endswith("trying again"), reason
    assert "Error" not in reason



def test_a_charge_keap_took_is_not_repeated_when_the_read_after_it_fails(ctx, settings, sandbox):
    # The charge is answered 201; the payment-list read that confirms it answers 503. The charge is in Keap: its
    # intent stays, and the next attempt records the approved payment it finds instead of charging again.
    ticket = register(ctx, "r-charged", customer={"email": "card.holder@example.com"},
                      payments=[{"amount": "19.90", "charge_payment_method_id": "1"}])
    for step in pipeline.STEP_NAMES[:2]:
        assert runner.run_step(ctx, settings, step, "r-charged", ticket=ticket) == runner.NEXT
    sandbox.set_faults(error_rate=1.0, routes=["GET /rest/v2/orders/{order_id}/payments"])
    outcome = runner.run_step(ctx, settings, "record_payment", "r-charged", ticket=ticket)
    sandbox.set_faults()
    assert outcome.action == "retry" and list(ctx.ledger.get("r-charged").intents)[0].startswith("payment:")
    assert runner.run_step(ctx, settings, "record_payment", "r-charged", ticket=ticket, failures=1) == runner.NEXT
    state = ctx.ledger.get("r-charged")
    assert not state.intents and any(name.startswith("payment:") for name in state.results)
    with sandbox.store.lock:
        charges = [p for p in sandbox.store.orders[state.results["order_id"]]["payments"] if p["method_id"]]
    assert [p["pay_status"] for p in charges] == ["APPROVED"]
