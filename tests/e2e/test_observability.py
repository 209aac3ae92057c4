"""What on-call sees, with real worker processes: Sentry (a local capture server) and the worker's log lines carry no
customer data or secret whatever fails; refusals are grouped warnings, bugs are errors; Flower's task events agree
with the ledger; the metrics endpoint agrees with the sandbox's own count of what it was asked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from hashlib import sha256
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from tests.e2e.conftest import order
from worker.app import app
from tests.e2e.test_oauth import SentryCapture

ROOT = Path(__file__).resolve().parents[2]
EMAIL, OTHER_EMAIL = "zebulon.quixworth+vip@example.com", "z.quixworth@example.org"
CUSTOMER = {"email": EMAIL, "given_name": "Zebulon", "family_name": "Quixworth", "phone": "+1 555 010 4477",
            "billing_address": {"line1": "742 Evergreen Terrace", "locality": "Springfield", "region": "OR",
                                "postal_code": "97403", "country_code": "USA"}}


def events_in(bodies: list[bytes]) -> list[dict]:
    """The events (not transactions or sessions) of Sentry envelopes."""
    found = []
    for body in bodies:
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2]):
            if header.strip() and json.loads(header).get("type") == "event":
                found.append(json.loads(payload))
    return found


class TaskEvents:
    """Celery's task events as Flower receives them, for the workers of one run."""

    def __init__(self, app, hostname_part: str):
        self.app, self.part = app, hostname_part
        self.seen: Counter = Counter()
        self.receiver = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        with self.app.connection_for_read() as conn:
            self.receiver = receiver = self.app.events.Receiver(conn, handlers={"*": self._event})
            subscribed = receiver.on_consume_ready

            def ready(*args, **kwargs):
                subscribed(*args, **kwargs)
                self.ready.set()

            receiver.on_consume_ready = ready
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def _event(self, event):
        if self.part in (event.get("hostname") or "") and event["type"].startswith("task-"):
            self.seen[event["type"]] += 1

    def stop(self):
        if self.receiver is not None:
            self.receiver.should_stop = True
        self.thread.join(10)


def test_no_customer_data_or_secret_reaches_sentry_or_the_logs_whatever_fails(fleet, e2e_sandbox, tmp_path,
                                                                           redis_client):
    sentry = SentryCapture()
    fernet_key = Fernet.generate_key().decode()
    run = fleet(SENTRY_DSN=sentry.dsn, MAX_RETRIES="1", TOKEN_ENCRYPTION_KEY=fernet_key)
    secrets = {EMAIL, OTHER_EMAIL, EMAIL.replace("@", "%40"), "Zebulon", "Quixworth", "555 010 4477", "5550104477",
               "742 Evergreen", run.env["KEAP_API_KEY"], fernet_key}
    ext = run.run_id
    orders = {
        "rejected": [order(f"{ext}-sku{i}", customer=CUSTOMER,
                           items=[{"sku": "NO-SUCH-SKU", "quantity": 1, "unit_price": "44.80"}]) for i in range(4)],
        "keap": [order(f"{ext}-keap", customer={**CUSTOMER, "email": OTHER_EMAIL})],
        "internal": [order(f"{ext}-bug", customer=CUSTOMER)],
        "transient": [order(f"{ext}-503-{i}", customer=CUSTOMER) for i in range(2)],
        "done": [order(f"{ext}-ok", customer=CUSTOMER, payments=[])],
    }
    ids = [o["external_id"] for group in orders.values() for o in group]
    for group in orders.values():
        for one in group:
            run.producer.enqueue_order(one, "backfill")
    # The contact this customer had was deleted in Keap after it was cached: Keap refuses the order (kind keap).
    redis_client.hset(f"{run.settings.key_prefix}:cache:contacts", sha256(OTHER_EMAIL.encode()).hexdigest(), "999999")
    # A bug: a ledger field the worker cannot read, holding the customer's data (as a corrupted write could).
    redis_client.hset(run.ledger.order_key(f"{ext}-bug"), "created_at", json.dumps(
        {**CUSTOMER, "api_key": run.env["KEAP_API_KEY"], "note": f"key {fernet_key}"}))
    e2e_sandbox.set_faults(error_rate=1.0, routes=["POST /rest/v2/orders/{order_id}/payments"])  # Keap is down

    tasks = TaskEvents(app, ext)
    log_path = tmp_path / "worker.log"
    try:
        with open(log_path, "w") as log:
            run.worker(errors=log, loglevel="DEBUG", events=True)
            finished = run.wait(ids, 90, statuses=("done", "failed"))
            deadline = time.monotonic() + 30  # what Sentry is sent leaves the worker a moment later
            while len(events_in(sentry.bodies)) < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
    finally:
        tasks.stop()
        e2e_sandbox.set_faults()
        sentry.server.shutdown()

    kinds = {ext_id: redis_client.hget(run.ledger.order_key(ext_id), "error_kind").decode() for ext_id in ids
             if finished[ext_id] == "failed"}  # (not ledger.get: the bug's order cannot be read)
    assert Counter(kinds.values()) == {"rejected": 4, "keap": 1, "internal": 1, "transient": 2}, kinds
    assert finished[f"{ext}-ok"] == "done"

    # Flower's view agrees with the ledger: every failed order is a failed task, and nothing was delivered again.
    assert tasks.seen["task-failed"] == len(kinds), tasks.seen
    assert tasks.seen["task-retried"] >= 2  # the transient failures were retried before they gave up

    events = events_in(sentry.bodies)
    by_level = Counter(e.get("level") for e in events)
    errors = [e for e in events if e.get("level") == "error"]
    assert len(errors) == 1 and errors[0]["exception"]["values"][-1]["type"] == "ValueError", by_level
    assert "[filtered]" in errors[0]["exception"]["values"][-1]["value"]  # the scrubber saw the customer's data
    refusals = {e["message"] if isinstance(e.get("message"), str) else e["logentry"]["message"]: e
                for e in events if e.get("level") == "warning"}
    assert len(refusals) == 3 and by_level["warning"] == 3, list(refusals)  # 7 refused orders, 3 reasons, 3 events
    rejected = next(e for m, e in refusals.items() if "(rejected)" in m)
    assert rejected["fingerprint"][:4] == ["keap-orders", "refusal", "rejected", "create_order"]
    shown = json.dumps([rejected["message"], rejected["fingerprint"], rejected["extra"], rejected["tags"]])
    assert rejected["extra"]["refusals"] == 1 and "NO-SUCH-SKU" not in shown  # grouped without values
    crumbs = [c for e in events for c in e.get("breadcrumbs", {}).get("values", [])]
    assert crumbs and not [c for c in crumbs if "http.query" in c.get("data", {})]  # a Keap query searches a customer
    assert not [b for b in sentry.bodies if b"OrderFailed" in b]  # a refusal is never an error event

    text = log_path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object (stderr is not a terminal)
    outcomes = [p for p in parsed if p.get("logger") == "keap_orders.steps"]
    assert {p["outcome"] for p in outcomes} >= {"failed", "next", "done", "retry"}
    assert all({"order_id", "step", "attempt", "lane", "outcome", "keap_calls", "duration_ms"} <= p.keys()
               for p in outcomes)
    assert any(p["outcome"] == "failed" and p["error_kind"] == "transient" and p["attempt"] >= 2 for p in outcomes)
    assert any(p["level"] == "DEBUG" for p in parsed) and "Traceback" in text  # all of it was searched

    haystacks = {"worker log": text, **{f"sentry envelope {i}": b.decode("utf-8", "replace")
                                        for i, b in enumerate(sentry.bodies)}}
    leaks = {(where, secret) for where, hay in haystacks.items() for secret in secrets if secret in hay}
    assert leaks == set()


def scrape(url: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    answer = requests.get(url, timeout=10)
    if answer.status_code != 200:
        # A scrape that meets a pool process creating its metrics file can fail (prometheus_client's multiprocess
        # reader; Prometheus then misses one scrape): the callers poll, so this one counts as nothing yet.
        return samples
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def keap_calls(samples) -> dict[str, float]:
    """keap_orders_keap_calls_total as the sandbox counts requests: "METHOD /rest<template> status"."""
    return {f"{dict(labels)['method']} /rest{dict(labels)['route']} {dict(labels)['status']}": value
            for (name, labels), value in samples.items() if name == "keap_orders_keap_calls_total"}


def test_the_metrics_endpoint_agrees_with_keap_during_and_after_an_import(fleet, tmp_path):
    from sandbox.server import Sandbox
    from tests.e2e.test_liveness import wait_for

    with Sandbox(port=0, limits="oauth", latency_ms=30) as sb:
        run = fleet(sb, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), RATE_LIMITS="oauth")
        run.worker(pool="prefork", concurrency=2)
        port = 29000 + os.getpid() % 1000
        server = subprocess.Popen([sys.executable, "-m", "admin.cli", "metrics", "--host", "127.0.0.1", "--port",
                                   str(port)], cwd=ROOT, env={**os.environ, **run.env}, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            wait_for(lambda: server.poll() is None and _answers(url), 30, "the metrics endpoint")
            ids = [f"{run.run_id}-{i}" for i in range(12)]
            for ext in ids:
                run.producer.enqueue_order(order(ext), "backfill")
            during = wait_for(lambda: (lambda s: s if sum(keap_calls(s).values()) else None)(scrape(url)), 30,
                              "calls counted during the import")
            stats = sb.stats()["requests"]
            assert all(value <= stats.get(key, 0) for key, value in keap_calls(during).items())
            run.wait(ids, 90)
            # Counters reach the files at once; the last answers of the last step may be a moment behind the ledger.
            final = wait_for(lambda: (lambda s: s if keap_calls(s) == sb.stats()["requests"] else None)(scrape(url)),
                             10, "the counters equal to the sandbox's")
        finally:
            server.terminate()
            server.wait(10)
    assert keap_calls(final) == sb.stats()["requests"] and sum(keap_calls(final).values()) >= 12 * 3
    orders = {dict(labels)["status"]: value for (name, labels), value in final.items() if name == "keap_orders_orders"}
    assert orders["done"] == 12 and orders["failed"] == 0
    steps = {tuple(v for _, v in labels): value for (name, labels), value in final.items()
             if name == "keap_orders_steps_total"}
    assert steps[("next", "create_order")] == 12 and steps[("done", "create_subscription")] == 12
    runs = {dict(labels)["step"]: value for (name, labels), value in final.items()
            if name == "keap_orders_step_seconds_count"}
    assert runs["record_payment"] == sum(v for (outcome, step), v in steps.items() if step == "record_payment")
    remaining = {dict(labels)["window"]: value for (name, labels), value in final.items()
                 if name == "keap_orders_quota_remaining"}
    assert 0 < remaining["quota"] < 150000 and "throttle" in remaining
    assert ("keap_orders_queue_messages", (("queue", run.settings.backfill_queue),)) in final


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
