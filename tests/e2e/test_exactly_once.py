"""Exactly once when Keap is slower than the client's timeout: the write lands after the client gave up, and the
next attempt must prove it did not land before writing again (issue 7, case 1), with real worker processes."""
from __future__ import annotations

import json

from click.testing import CliRunner

from admin.cli import main
from tests.e2e.conftest import in_keap, order


def test_writes_slower_than_the_client_timeout_are_applied_once(fleet, e2e_sandbox, tmp_path):
    # Keap takes 2 s to apply each write; the client gives up after 1 s; nothing is written again for 4 s.
    run = fleet(KEAP_TIMEOUT_SECONDS="1", SETTLE_SECONDS="4", SETTLE_CHECKS="2")
    run.keeper()
    run.worker(concurrency=4)
    slow = ["POST /rest/v2/orders", "POST /rest/v2/orders/{order_id}/payments", "POST /rest/v2/subscriptions"]
    e2e_sandbox.set_faults(latency_ms=2000, routes=slow)
    orders = [order(f"{run.run_id}-{i}", subscriptions=[{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY"}])
              for i in range(3)]
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    env = {**run.env}
    result = CliRunner(env=env).invoke(main, ["backfill", str(path), "--wait"])
    assert result.exit_code == 0, result.output
    e2e_sandbox.set_faults()
    assert [in_keap(e2e_sandbox, o["external_id"]) for o in orders] == [(1, 1)] * 3
    with e2e_sandbox.store.lock:
        subs = [s for s in e2e_sandbox.store.subscriptions.values()
                if any(o["external_id"] in s["custom_fields"].values() for o in orders)]
    assert len(subs) == 3
    verify = CliRunner(env=env).invoke(main, ["verify", str(path)])
    assert verify.exit_code == 0 and "verified 3 orders: 0 problem(s)" in verify.output


def test_a_card_charge_whose_outcome_is_unknown_waits_for_an_operator(fleet, e2e_sandbox):
    run = fleet(SETTLE_SECONDS="2", SETTLE_CHECKS="2", MAX_RETRIES="3")
    run.keeper()
    run.worker()
    ext = f"{run.run_id}-card"
    charge = order(ext, customer={"email": "card.holder@example.com"},
                   payments=[{"amount": "44.80", "charge_payment_method_id": "1"}])
    # A gateway error after the charge was sent: nothing was applied, but the client cannot know that.
    e2e_sandbox.set_faults(error_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/payments"])
    run.producer.enqueue_order(charge, "live")
    run.wait([ext], 60, statuses=("failed",))
    state = run.ledger.get(ext)
    assert "--charges-checked" in state.error and in_keap(e2e_sandbox, ext) == (1, 0)
    e2e_sandbox.set_faults()
    again = CliRunner(env=run.env).invoke(main, ["retry", ext])  # without the operator's word: still no charge
    assert again.exit_code == 0
    run.wait([ext], 60, statuses=("failed",))
    assert in_keap(e2e_sandbox, ext) == (1, 0)
    checked = CliRunner(env=run.env).invoke(main, ["retry", ext, "--charges-checked"])
    assert checked.exit_code == 0
    run.wait([ext], 60)
    assert in_keap(e2e_sandbox, ext) == (1, 1)
