"""OAuth end to end: a real Celery worker process (with the keeper's beat) on tokens that live 3 s, a grant revoked in
the middle (the fleet pauses, orders wait, nothing reaches Keap), `keap-orders auth login` (the orders resume and
finish), and every log line, CLI output, ledger record and Sentry event searched for a token or secret."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from admin.cli import main
from tests.conftest import conformance_spec, spec_problems
from tests.keap.test_tokens import oauth_env, settings_of
from tests.pipeline.test_auth_cli import cli_login
from tests.pipeline.conftest import wait_until_finished
from tests.pipeline.test_pipeline import typical_order
from worker.runner import REAUTH

ROOT = Path(__file__).resolve().parents[2]


class SentryCapture:
    """A local Sentry: accepts every envelope and keeps its decompressed bytes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                capture.bodies.append(raw)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.dsn = f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def events_with(self, text: str) -> list[bytes]:
        return [b for b in self.bodies if text.encode() in b]


@pytest.fixture
def fleet(key_prefix, redis_client):
    """Sandbox (3 s tokens), local Sentry, one logged-in worker process with embedded beat; all outputs kept."""
    from sandbox.server import Sandbox
    from worker.app import configure

    sentry = SentryCapture()
    with Sandbox(limits="off", token_lifetime=3, record=True) as sb, tempfile.TemporaryDirectory() as tmp:
        env = oauth_env(sb, key_prefix, LIVE_QUEUE=f"{key_prefix}.live", BACKFILL_QUEUE=f"{key_prefix}.backfill",
                        KEEPER_QUEUE=f"{key_prefix}.keeper", REQUIRE_PERSISTENT_REDIS="false", SENTRY_DSN=sentry.dsn,
                        KEEPER_INTERVAL_SECONDS="0.5", LEASE_SECONDS="3", SETTLE_SECONDS="2",
                        BROKER_RETRY_MAX_SECONDS="2", QUEUED_STALL_SECONDS="20")
        printed, code = cli_login(env)
        outputs, codes = [printed], [code]
        log_path = Path(tmp) / "worker.log"
        with open(log_path, "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.logged_worker", "-A", "worker.app", "worker", "-Q",
                 f"{env['LIVE_QUEUE']},{env['BACKFILL_QUEUE']},{env['KEEPER_QUEUE']}", "--pool", "threads",
                 "--concurrency", "4", "--loglevel", "DEBUG", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "--hostname", f"{key_prefix}@%h", "--beat", "--schedule",
                 str(Path(tmp) / "beat")],
                cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
            configure(settings_of(env))
            try:
                yield sb, env, sentry, outputs, codes, log_path
            finally:
                worker.terminate()
                worker.wait(30)
        problems = spec_problems(conformance_spec(), sb.exchanges)
        assert not problems, problems[:5]
    sentry.server.shutdown()


def test_a_revoked_grant_pauses_the_fleet_until_auth_login_then_everything_finishes(fleet, redis_client, key_prefix,
                                                                                     tmp_path):
    from producers.enqueue import Producer

    sb, env, sentry, outputs, codes, log_path = fleet
    producer = Producer(settings_of(env))
    run = uuid.uuid4().hex[:6]
    first = [typical_order(f"oa-{run}-{i}") for i in range(6)]
    for order in first:
        producer.enqueue_order(order)
    assert set(wait_until_finished(producer.ledger, [o["external_id"] for o in first], 120).values()) == {"done"}
    time.sleep(3.5)  # at least one more token lifetime: the keeper refreshes ahead of expiry while idle
    assert sb.stats()["oauth"]["refreshes"] >= 1 and sb.stats()["oauth"]["invalid_grant"] == 0

    requests.post(sb.url + "/__sandbox__/revoke", timeout=10).raise_for_status()
    second = [typical_order(f"oa-{run}-r{i}") for i in range(6)]
    for order in second:
        producer.enqueue_order(order)
    ids = [o["external_id"] for o in second]
    deadline = time.monotonic() + 60
    while not all(s and s.parked_reason == REAUTH for s in map(producer.ledger.get, ids)):
        assert time.monotonic() < deadline, [producer.ledger.get(i).as_dict() for i in ids]
        time.sleep(0.2)
    assert sb.stats()["oauth"]["invalid_grant"] == 1  # one refresh met the revoked grant; nobody tried again

    # Paused: neither the steps nor the keeper's passes call Keap, and no order burns a retry.
    calls = sb.stats()["total"] + sum(sb.stats()["oauth"].values())
    time.sleep(3)
    assert sb.stats()["total"] + sum(sb.stats()["oauth"].values()) == calls
    runner = CliRunner(env=env)
    shown = runner.invoke(main, ["status", ids[0]])
    assert "status        waiting until" in shown.output and REAUTH in shown.output, shown.output
    stuck = runner.invoke(main, ["stuck", "--older-than", "0"])
    assert sum(REAUTH in line for line in stuck.output.splitlines()) == 6, stuck.output
    auth_status = runner.invoke(main, ["auth", "status"])
    assert "Keap refused the grant" in auth_status.output and "waiting for re-authorisation: 6" in auth_status.output
    outputs += [shown.output, stuck.output, auth_status.output]

    printed, code = cli_login(env)
    outputs.append(printed)
    codes.append(code)
    assert "resumed 6 order(s)" in printed
    assert set(wait_until_finished(producer.ledger, ids, 120).values()) == {"done"}
    orders_file = tmp_path / "orders.jsonl"
    orders_file.write_text("".join(json.dumps(o) + "\n" for o in first + second))
    verified = runner.invoke(main, ["verify", str(orders_file)])  # read back from Keap with the OAuth tokens
    assert verified.exit_code == 0 and "verified 12 orders: 0 problem(s)" in verified.output, verified.output
    outputs += [verified.output, runner.invoke(main, ["auth", "status"]).output]
    assert sb.stats()["oauth"]["invalid_grant"] == 1

    # The alert reached Sentry once, without a secret.
    deadline = time.monotonic() + 20
    while not sentry.events_with("Keap refused the refresh token"):
        assert time.monotonic() < deadline, "no Sentry event for the paused fleet"
        time.sleep(0.2)
    assert len(sentry.events_with("Keap refused the refresh token")) == 1

    secrets = {"sandbox-secret", env["TOKEN_ENCRYPTION_KEY"]}
    for exchange in sb.exchanges:
        if exchange["template"] == "/token" and exchange["status"] == 200:
            secrets |= {exchange["response_json"]["access_token"], exchange["response_json"]["refresh_token"]}
    secrets |= set(codes)
    assert len(secrets) >= 10  # 2 logins + at least one refresh, 2 codes, the client secret, the key
    ledger_dump = []
    for key in redis_client.scan_iter(f"{key_prefix}*", count=1000):
        kind = redis_client.type(key)
        value = {b"string": redis_client.get, b"hash": redis_client.hgetall, b"set": redis_client.smembers,
                 b"zset": lambda k: redis_client.zrange(k, 0, -1)}.get(kind, lambda k: b"")(key)
        ledger_dump.append(repr(value))
    haystacks = {"worker log": log_path.read_text(), "CLI output": "\n".join(o for o in outputs),
                 "ledger": "\n".join(ledger_dump), "Sentry": b"\n".join(sentry.bodies).decode("utf-8", "replace")}
    assert "DEBUG" in haystacks["worker log"] and "tokens refreshed" in haystacks["worker log"]
    leaks = {where: secret[:6] + "…" for where, text in haystacks.items() for secret in secrets if secret in text}
    assert leaks == {}


def test_a_traceback_through_the_token_call_reaches_sentry_without_its_local_values(start_sandbox_for_sentry):
    # The frames of a refused refresh hold the refresh token and the client secret in local variables.
    sb, sentry = start_sandbox_for_sentry
    script = f"""
import sentry_sdk
from worker.ops.sentry import init
from worker.keap.auth import refresh_token
from worker.settings import Settings
init(Settings(sentry_dsn={sentry.dsn!r}))
try:
    refresh_token({sb.url + '/token'!r}, "sandbox-client", "sandbox-secret", "rt-not-to-be-seen-4711")
except Exception as exc:
    sentry_sdk.capture_exception(exc)
sentry_sdk.flush(10)
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    events = sentry.events_with("KeapAuthError")
    assert events and b"_token_call" in events[0]  # the traceback is there ...
    assert not sentry.events_with("rt-not-to-be-seen-4711") and not sentry.events_with("sandbox-secret")  # ... its values not


@pytest.fixture
def start_sandbox_for_sentry():
    from sandbox.server import Sandbox

    sentry = SentryCapture()
    with Sandbox(limits="off") as sb:
        yield sb, sentry
    sentry.server.shutdown()
