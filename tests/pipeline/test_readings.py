"""Issue 17: under every reading of what Keap leaves undocumented, `doctor --probe` names the reading, and each
order then goes into Keap exactly or stops with a message that says what to check — never "done" with other data.
The sandbox plays the reading; the worker is the pipeline's real Celery worker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from click.testing import CliRunner

from admin.cli import main
from admin.verify import verify_file
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import typical_order
from worker.app import readiness_problems
from worker.steps import readings

SUB = {"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY"}  # plan price 25.00


@pytest.fixture
def play(keap_sandbox, ctx, producer, ext):
    """A paid order and a subscription at its plan's price made under the default reading (what the probe reads),
    then `play(name)` switches the sandbox to a reading; afterwards the default and unprobed again."""
    producer.enqueue_order(typical_order(f"{ext}-seen", subscriptions=[SUB]))
    assert wait_until_finished(ctx.ledger, [f"{ext}-seen"])[f"{ext}-seen"] == "done"
    yield lambda *names, **faults: keap_sandbox.set_faults(readings=list(names), **faults)
    keap_sandbox.set_faults()
    readings.store(ctx.ledger, dict.fromkeys(readings.VALUES))


def probe(cli_env):
    return CliRunner(env=cli_env).invoke(main, ["doctor", "--probe", "--promo-code", "SAVE10"])


def run(ctx, producer, *orders) -> dict[str, str]:
    for order in orders:
        producer.enqueue_order(order)
    return wait_until_finished(ctx.ledger, [o["external_id"] for o in orders], timeout=60)


def exact(ctx, tmp_path, *orders) -> None:
    """Every done order reads back from Keap as the order says (items, totals, payments, fields, subscriptions)."""
    path = tmp_path / "done.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    assert verify_file(path, None, ctx) == (len(orders), [])


@pytest.mark.parametrize("reading", [None, "email-case-sensitive", "billing-cents", "no-notes", "no-productless-lines",
                                     "promo-applied", "no-subscription-fields", "no-create-total",
                                     "no-custom-field-filter"])
def test_the_probe_names_the_reading_and_leaves_nothing_behind(ctx, keap_sandbox, play, cli_env, reading):
    play(*([reading] if reading else []))
    orders_before = len(keap_sandbox.store.orders)
    result = probe(cli_env)
    assert result.exit_code == (3 if reading == "no-custom-field-filter" else 0), result.output
    named = [line for line in result.output.splitlines() if "(reading " in line]
    if reading is None:
        assert named == [], result.output
        assert readings.get(ctx.ledger, "email_search") == "case-insensitive"
        assert readings.get(ctx.ledger, "billing_amount_unit") == "currency"
    else:
        assert len(named) == 1 and f"(reading {reading}:" in named[0], result.output
    assert "deleted it" in result.output and len(keap_sandbox.store.orders) == orders_before
    assert "decline answers: not probed" in result.output


def test_declined_charges_in_other_words_are_never_paid(ctx, play, producer, ext, tmp_path):
    play("decline-words", decline_rate=1.0)
    charge = [{"amount": "74.50", "charge_payment_method_id": "1"}]
    declined = typical_order(ext, email="card.holder@example.com", payments=charge)
    assert run(ctx, producer, declined)[ext] == "failed"
    state = ctx.ledger.get(ext)
    assert "declined the charge" in state.error and "FAILED" in state.error
    assert ctx.keap.orders.get(state.results["order_id"])["total_paid"]["amount"] == 0
    play("decline-words")  # the issuer approves: confirmed in the payment list, done
    approved = typical_order(f"{ext}-ok", email="card.holder@example.com", payments=charge)
    assert run(ctx, producer, approved)[f"{ext}-ok"] == "done"
    exact(ctx, tmp_path, approved)


def test_billing_amounts_in_cents(ctx, play, producer, ext, tmp_path, cli_env, keap_sandbox):
    play("billing-cents")
    unprobed = typical_order(f"{ext}-u", subscriptions=[{**SUB, "billing_amount": "20.00"}])
    at_price = typical_order(f"{ext}-p", subscriptions=[{**SUB, "billing_amount": "25.00"}])
    statuses = run(ctx, producer, unprobed, at_price)
    # Unprobed, an amount other than the plan's price cannot be sent safely: it stops before the subscription.
    assert statuses == {f"{ext}-u": "failed", f"{ext}-p": "done"}
    assert "doctor --probe" in ctx.ledger.get(f"{ext}-u").error
    assert "subscription:0" not in ctx.ledger.get(f"{ext}-u").results
    assert "reading billing-cents" in probe(cli_env).output
    probed = typical_order(f"{ext}-c", subscriptions=[{**SUB, "billing_amount": "20.00"}])
    assert run(ctx, producer, probed)[f"{ext}-c"] == "done"
    for order in (at_price, probed):
        sub_id = ctx.ledger.get(order["external_id"]).results["subscription:0"]
        billed = keap_sandbox.store.subscriptions[sub_id]["billing_amount"]
        assert Decimal(str(billed)) == Decimal(order["subscriptions"][0]["billing_amount"])
    exact(ctx, tmp_path, at_price, probed)


@pytest.mark.parametrize("probed", [True, False])
def test_a_contact_the_search_misses_is_never_overwritten(ctx, play, producer, ext, cli_env, probed):
    email = f"Mixed.{ext}@Example.com"
    old = {"email_addresses": [{"email": email, "field": "EMAIL1"}], "given_name": "Ana", "family_name": "Lima",
           "phone_numbers": [{"number": "+1 555 0100", "field": "PHONE1"}],
           "addresses": [{"field": "BILLING", "line1": "1 Old Rd", "locality": "Austin", "country_code": "USA"}]}
    contact = ctx.keap.contacts.create(old)
    play("email-case-sensitive")
    if probed:
        assert "reading email-case-sensitive" in probe(cli_env).output
    order = typical_order(ext, email=email.lower())
    assert run(ctx, producer, order)[ext] == "failed"
    error = ctx.ledger.get(ext).error
    assert f"existing Keap contact {contact['id']}" in error and "Check contact" in error
    kept = ctx.keap.contacts.get(contact["id"])
    assert (kept["addresses"], kept["phone_numbers"]) == (old["addresses"], old["phone_numbers"])
    producer.retry_order(ext)  # the operator checked the contact: the order goes on with it, changing nothing
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    assert ctx.ledger.get(ext).results["contact_id"] == str(contact["id"])
    assert ctx.keap.contacts.get(contact["id"])["addresses"] == old["addresses"]


def test_a_mixed_case_email_is_found_as_spelled(ctx, play, producer, ext):
    email = f"Spelled.{ext}@Example.com"
    old_address = {"field": "BILLING", "line1": "1 Old Rd", "country_code": "USA"}
    contact = ctx.keap.contacts.create({"email_addresses": [{"email": email, "field": "EMAIL1"}],
                                        "addresses": [old_address]})
    play("email-case-sensitive")
    assert run(ctx, producer, typical_order(ext, email=email))[ext] == "done"
    assert ctx.ledger.get(ext).results["contact_id"] == str(contact["id"])
    assert [a["line1"] for a in ctx.keap.contacts.get(contact["id"])["addresses"]] == ["1 Old Rd"]


def test_payments_listed_without_notes(ctx, play, producer, ext, tmp_path, cli_env):
    play("no-notes")
    assert "reading no-notes" in probe(cli_env).output
    plain = typical_order(f"{ext}-ok")
    assert run(ctx, producer, plain)[f"{ext}-ok"] == "done"
    exact(ctx, tmp_path, plain)
    play("no-notes", commit_then_timeout_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/payments"])
    lost = typical_order(f"{ext}-lost")
    assert run(ctx, producer, lost)[f"{ext}-lost"] == "failed"
    state = ctx.ledger.get(f"{ext}-lost")
    assert "without a note but with this payment's amount, time and method" in state.error
    assert len(ctx.keap.orders.list_payments(state.results["order_id"])) == 1  # never paid twice


def test_lines_without_a_product_refused(ctx, play, producer, ext, tmp_path, cli_env, keap_sandbox):
    play("no-productless-lines")
    unprobed = typical_order(f"{ext}-u")
    assert run(ctx, producer, unprobed)[f"{ext}-u"] == "failed"
    assert "refuses order lines without a product" in ctx.ledger.get(f"{ext}-u").error
    assert "reading no-productless-lines" in probe(cli_env).output
    orders_before = len(keap_sandbox.store.orders)
    shipped = typical_order(f"{ext}-s")
    products_only = typical_order(f"{ext}-p", items=shipped["items"][:3],
                                  payments=[{"amount": "65.80", "method": "Cash"}])
    assert run(ctx, producer, shipped, products_only) == {f"{ext}-s": "failed", f"{ext}-p": "done"}
    assert "doctor --probe` found that" in ctx.ledger.get(f"{ext}-s").error
    assert len(keap_sandbox.store.orders) == orders_before + 1  # nothing was created for the refused ones
    exact(ctx, tmp_path, products_only)


def test_promo_codes_beside_discount_lines(ctx, play, producer, ext, tmp_path, cli_env):
    play("promo-applied")
    assert "reading promo-applied" in probe(cli_env).output
    order = typical_order(ext, promo_codes=["SAVE10"], payments=[{"amount": "70.50", "method": "Cash"}])
    order["items"].append({"type": "DISCOUNT", "name": "SAVE10 at the store", "unit_price": "4.00"})
    assert run(ctx, producer, order)[ext] == "done"  # the code is not sent beside the line: no double discount
    exact(ctx, tmp_path, order)


def test_subscription_lists_without_custom_fields(ctx, play, producer, ext, tmp_path, cli_env, keap_sandbox):
    play("no-subscription-fields")
    assert "reading no-subscription-fields" in probe(cli_env).output
    play("no-subscription-fields", commit_then_timeout_rate=1.0, routes=["POST /rest/v2/subscriptions"])
    order = typical_order(ext, subscriptions=[SUB])
    assert run(ctx, producer, order)[ext] == "done"
    contact = ctx.ledger.get(ext).results["contact_id"]
    assert len([s for s in keap_sandbox.store.subscriptions.values() if s["contact_id"] == contact]) == 1
    exact(ctx, tmp_path, order)


def test_workers_refuse_to_start_without_custom_field_filtering(ctx, play, settings, cli_env):
    play("no-custom-field-filter")
    result = probe(cli_env)
    assert result.exit_code == 3 and "FAIL  reading custom_field_filter" in result.output
    assert any("refuses to filter orders by a custom field" in p for p in readiness_problems(settings))
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "x"],
                            env={**os.environ, **cli_env, "REQUIRE_PERSISTENT_REDIS": "false"},
                            capture_output=True, text=True, timeout=60)
    assert worker.returncode == 78 and "refuses to filter orders by a custom field" in worker.stderr
    play()
    assert probe(cli_env).exit_code == 0
    assert not any("custom field" in p for p in readiness_problems(settings))


def test_a_create_answer_without_total_is_read_back(ctx, play, producer, ext, cli_env):
    play("no-create-total")
    assert "reading no-create-total" in probe(cli_env).output
    # Keap takes 10 % off for the code; the order does not say so: the total check must still run and stop it.
    assert run(ctx, producer, typical_order(ext, promo_codes=["SAVE10"]))[ext] == "failed"
    state = ctx.ledger.get(ext)
    assert "total as 67.92, the order says 74.50" in state.error
    assert ctx.keap.orders.list_payments(state.results["order_id"]) == []
