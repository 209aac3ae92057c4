"""The operator's console against the real worker: failed orders by step, reason, time and lane; bulk retry with a
dry run and a confirmation; an order's record for support; retention that keeps exactly-once."""
from __future__ import annotations

import json
import time
from decimal import Decimal

from click.testing import CliRunner

from admin.cli import main
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import keap_orders, typical_order


def cli(cli_env, *args, **kw):
    return CliRunner(env=cli_env).invoke(main, list(args), **kw)


def ids_in(output: str) -> set[str]:
    return {line.split()[0] for line in output.splitlines() if line.startswith("t-")}  # the table's order column


def test_failed_filters_then_a_bulk_retry_with_dry_run_and_confirmation(ctx, producer, ext, cli_env):
    sku = f"LATER-{ext}".upper()  # a product the Keap account gets only after the orders failed
    bad_sku = [typical_order(f"{ext}-s{i}", items=[{"sku": sku, "quantity": 1, "unit_price": "74.50"}])
               for i in range(2)]
    bad_payment = typical_order(f"{ext}-p", payments=[{"amount": "74.50", "method": "Wire Transfer"}])
    for order in bad_sku:
        producer.enqueue_order(order, "backfill")
    producer.enqueue_order(bad_payment, "live")
    ids = [o["external_id"] for o in [*bad_sku, bad_payment]]
    assert set(wait_until_finished(ctx.ledger, ids).values()) == {"failed"}

    # Every order of this test carries `ext` in its error (the order id), so --reason ext keeps other tests' out.
    assert ids_in(cli(cli_env, "failed", "--reason", ext).output) == set(ids)
    at_create = cli(cli_env, "failed", "--reason", ext, "--step", "create_order")
    assert ids_in(at_create.output) == {f"{ext}-s0", f"{ext}-s1"}
    assert ids_in(cli(cli_env, "failed", "--reason", ext, "--step", "record_payment").output) == {f"{ext}-p"}
    assert ids_in(cli(cli_env, "failed", "--reason", ext, "--lane", "live").output) == {f"{ext}-p"}
    assert ids_in(cli(cli_env, "failed", "--reason", sku.lower()).output) == {f"{ext}-s0", f"{ext}-s1"}  # words
    kinds = cli(cli_env, "failed", "--reason", "rejected")  # an error kind
    assert set(ids) <= ids_in(kinds.output) and "rejected" in kinds.output
    assert ids_in(cli(cli_env, "failed", "--reason", ext, "--since", "10m").output) == set(ids)
    assert ids_in(cli(cli_env, "failed", "--reason", ext, "--until", "2001-01-01").output) == set()
    listed = cli(cli_env, "failed", "--reason", ext, "--limit", "1")
    assert len(ids_in(listed.output)) == 1 and "3 of" in listed.output and "1 shown" in listed.output
    assert cli(cli_env, "failed", "--since", "yesterday-ish").exit_code == 2

    calls = ctx.keap.calls
    dry = cli(cli_env, "retry", "--failed", "--reason", sku, "--dry-run")
    assert dry.exit_code == 0 and ids_in(dry.output) == {f"{ext}-s0", f"{ext}-s1"} and "would be retried" in dry.output
    declined = cli(cli_env, "retry", "--failed", "--reason", sku, input="n\n")
    assert declined.exit_code == 1 and "nothing was retried" in declined.output
    assert {ctx.ledger.get(i).status for i in ids} == {"failed"} and ctx.keap.calls == calls  # nothing was sent

    ctx.keap.products.create({"name": "Later", "sku": sku, "price": Decimal("74.50"), "short_description": "Later"})
    done = cli(cli_env, "retry", "--failed", "--reason", sku, input="y\n")
    assert done.exit_code == 0 and "retried 2 of 2 order(s)" in done.output, done.output
    assert wait_until_finished(ctx.ledger, [f"{ext}-s0", f"{ext}-s1"]) == {f"{ext}-s0": "done", f"{ext}-s1": "done"}
    assert ctx.ledger.get(f"{ext}-p").status == "failed"  # not picked by the filter
    assert cli(cli_env, "retry", f"{ext}-p", "--failed").exit_code == 2  # one ID or --failed, not both
    assert cli(cli_env, "retry", f"{ext}-p", "--step", "create_order").exit_code == 2  # filters need --failed


def test_export_shows_no_customer_data_unless_asked_and_warns_then(ctx, producer, ext, cli_env):
    producer.enqueue_order(typical_order(ext))
    wait_until_finished(ctx.ledger, [ext])
    plain = cli(cli_env, "export", ext)
    record = json.loads(plain.output)
    assert record["status"] == "done" and record["results"]["order_id"] and record["done_at"]["utc"].endswith("UTC")
    assert "message" not in record and "@example.com" not in plain.output and "Oak St" not in plain.output
    full = cli(cli_env, "export", ext, "--with-message")
    assert "personal data" in full.stderr
    assert f"{ext}@example.com" in full.stdout and json.loads(full.stdout)["message"]["customer"]["given_name"] == "Ana"
    assert cli(cli_env, "export", f"{ext}-nope").exit_code == 1


def test_gc_compacts_done_orders_and_a_compacted_order_is_never_written_again(ctx, producer, keap_sandbox, ext,
                                                                             cli_env):
    order = typical_order(ext, subscriptions=[{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY"}])
    producer.enqueue_order(order)
    assert wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    key = ctx.ledger.order_key(ext)
    before = ctx.ledger.redis.memory_usage(key)
    results = ctx.ledger.get(ext).results
    time.sleep(0.2)
    dry = cli(cli_env, "gc", "--older-than-days", "0.000001", "--dry-run")
    assert dry.exit_code == 0 and "would be compacted" in dry.output and ctx.ledger.get(ext).compacted_at is None
    gc = cli(cli_env, "gc", "--older-than-days", "0.000001")
    assert gc.exit_code == 0 and "compacted" in gc.output
    state = ctx.ledger.get(ext)
    assert state.status == "done" and state.compacted_at and state.message is None
    kept = {k for k in results if k.startswith(("order_id", "payment:", "subscription:", "item:"))}
    assert kept <= set(state.results)
    assert ctx.ledger.redis.memory_usage(key) < before / 2
    assert "compacted" in cli(cli_env, "status", ext).output

    writes = lambda: {k: v for k, v in keap_sandbox.stats()["requests"].items() if not k.startswith("GET")}  # noqa
    seen = writes()
    again = producer.enqueue_order(order)  # a backfill of the same file, a year later
    assert not again.sent and again.status == "done"
    forced = producer.enqueue_order(order, force=True)  # even forced: every write is recorded, none is repeated
    assert forced.sent and wait_until_finished(ctx.ledger, [ext])[ext] == "done"
    assert {k: v for k, v in writes().items() if not k.startswith("PATCH")} == {
        k: v for k, v in seen.items() if not k.startswith("PATCH")}  # custom fields may be PATCHed (idempotent)
    [found] = keap_orders(ctx, ext)
    assert len(ctx.keap.orders.list_payments(found["id"])) == 1
    assert len(ctx.keap.subscriptions.find(contact_id=state.results["contact_id"])) == 1

    ctx.ledger.compact_done(0)  # compacted again; a retry without the order says why it cannot
    retry = cli(cli_env, "retry", ext)  # a done order: nothing to do
    assert retry.exit_code == 0 and "already done in Keap; nothing was sent" in retry.output
    retry = cli(cli_env, "retry", ext, "--from-step", "create_order")
    assert retry.exit_code == 1 and "retention" in retry.output
