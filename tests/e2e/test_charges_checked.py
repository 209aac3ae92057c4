"""`retry --charges-checked` cannot outrun the rules (issue 16, case 3): only for an order failed on a stored-card
charge whose answer was lost, only after its settle time, and Keap is looked at once more before charging again."""
from __future__ import annotations

from click.testing import CliRunner

from admin.cli import main
from tests.e2e.conftest import in_keap, order
from worker.context import build_context
from worker.contract import parse_order
from worker.steps import payloads


def lost_charge(run, e2e_sandbox, name, settling=("waiting",)):
    """An order whose card charge got a gateway error (nothing applied; the worker cannot know): it settles."""
    ext = f"{run.run_id}-{name}"
    charge = order(ext, customer={"email": "card.holder@example.com"},  # the seed contact with card 1
                   payments=[{"amount": "20.00", "charge_payment_method_id": "1"}])
    e2e_sandbox.set_faults(error_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/payments"])
    run.producer.enqueue_order(charge, "live")
    run.wait([ext], 30, statuses=settling)
    e2e_sandbox.set_faults()
    return ext, charge


def test_charges_checked_is_refused_while_settling_then_charges_once(fleet, e2e_sandbox):
    run = fleet(SETTLE_SECONDS="5", SETTLE_CHECKS="2", MAX_RETRIES="3")
    run.keeper()
    run.worker()
    ext, _ = lost_charge(run, e2e_sandbox, "settling")
    early = CliRunner(env=run.env).invoke(main, ["retry", ext, "--charges-checked"])
    assert early.exit_code == 1 and "only for an order that failed because the answer to a stored-card charge was " \
                                    "lost (this one is waiting)" in early.output
    run.wait([ext], 60, statuses=("failed",))  # the settle time and both lookups passed: an operator decides
    assert "--charges-checked" in run.ledger.get(ext).error and in_keap(e2e_sandbox, ext) == (1, 0)
    checked = CliRunner(env=run.env).invoke(main, ["retry", ext, "--charges-checked", "--wait", "--timeout", "60s"])
    assert checked.exit_code == 0, checked.output
    assert in_keap(e2e_sandbox, ext) == (1, 1)  # exactly one charge


def test_a_charge_that_landed_late_is_found_at_retry_time_not_repeated(fleet, e2e_sandbox):
    run = fleet(SETTLE_SECONDS="2", SETTLE_CHECKS="2", MAX_RETRIES="3")
    run.keeper()
    run.worker()
    ext, charge = lost_charge(run, e2e_sandbox, "late", settling=("waiting", "failed"))
    run.wait([ext], 60, statuses=("failed",))
    # Keap applies the charge after the lookups gave up; the operator looked too early and says it did not go through.
    payment = parse_order(charge).payments[0]
    build_context(run.settings).keap.orders.add_payment(run.ledger.get(ext).results["order_id"],
                                                        payloads.payment_body(payment, parse_order(charge)))
    assert in_keap(e2e_sandbox, ext) == (1, 1)
    checked = CliRunner(env=run.env).invoke(main, ["retry", ext, "--charges-checked", "--wait", "--timeout", "60s"])
    assert checked.exit_code == 0, checked.output
    assert in_keap(e2e_sandbox, ext) == (1, 1)  # found by the lookup at retry time, recorded, not charged again


def test_charges_checked_is_refused_for_an_order_without_a_lost_charge(fleet, e2e_sandbox):
    run = fleet()
    run.worker()
    ext = f"{run.run_id}-plain"
    run.producer.enqueue_order(order(ext, items=[{"sku": "NOT-IN-KEAP", "quantity": 1, "unit_price": "44.80"}]),
                               "live")
    run.wait([ext], 30, statuses=("failed",))
    refused = CliRunner(env=run.env).invoke(main, ["retry", ext, "--charges-checked"])
    assert refused.exit_code == 1 and "(this one is failed, with no unanswered charge)" in refused.output
