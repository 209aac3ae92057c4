"""A Redis restart never kills a worker: a real `celery worker` subprocess on its own `redis-server` (a spare port,
appendonly, so the queues survive), restarted several times while steps are in flight; the worker lives on and
every order finishes once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.e2e.conftest import in_keap, order
from tests.e2e.test_liveness import wait_for

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def own_redis(port: int):
    """A redis-server of this test's own, with `restart()` (SHUTDOWN, which writes the AOF, then start again)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--appendonly", "yes",
               "--save", "", "--appendfsync", "always"]
        procs = []

        def start():
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
            wait_for(lambda: _pings(port), 10, f"redis-server on {port}")

        def restart(down: float = 0.0):
            redis.Redis(port=port).shutdown(nosave=False)
            procs[-1].wait(10)
            time.sleep(down)
            start()

        start()
        try:
            yield restart
        finally:
            procs[-1].terminate()
            procs[-1].wait(10)


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_a_redis_restart_under_load_kills_no_worker(e2e_sandbox, tmp_path):
    from admin.demo import run_env, worker_process
    from worker import context
    from worker.settings import Settings

    port = 6400 + (int(time.time()) % 90)
    with own_redis(port) as restart:
        url = f"redis://127.0.0.1:{port}/0"
        env = run_env(e2e_sandbox.base_url, url, "restart", RATE_LIMITS="off", LEASE_SECONDS="3",
                      SETTLE_SECONDS="3", QUEUED_STALL_SECONDS="10", KEEPER_INTERVAL_SECONDS="1",
                      BROKER_RETRY_MAX_SECONDS="3", RETRY_BACKOFF_CAP_SECONDS="2")
        ledger = context.ledger(Settings(**{name.lower(): value for name, value in env.items()}))
        # Each write takes a while, so steps are in flight (and acknowledge late) when Redis goes away.
        e2e_sandbox.set_faults(latency_ms=700,
                               routes=["POST /rest/v2/orders", "POST /rest/v2/orders/{order_id}/payments"])
        ids = [f"restart-{i}" for i in range(12)]
        log = tmp_path / "worker.log"
        with open(log, "w") as errors, worker_process(env, name="restart", pool="prefork", concurrency=2, beat=True,
                                                      errors=errors, loglevel="INFO") as worker:
            # Sent by another process: this one's Celery app stays on the shared Redis for the other tests.
            subprocess.run([sys.executable, "-c", _ENQUEUE, json.dumps([order(ext) for ext in ids])],
                           env={**os.environ, **env}, cwd=ROOT, check=True, timeout=60)
            for i in range(4):
                time.sleep(1.5)
                restart(down=i % 2)
                assert worker.poll() is None, log.read_text()[-3000:]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and set(ledger.statuses(ids).values()) != {"done"}:
                assert worker.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
            assert worker.poll() is None, log.read_text()[-3000:]
        assert set(ledger.statuses(ids).values()) == {"done"}
        assert [in_keap(e2e_sandbox, ext) for ext in ids] == [(1, 1)] * len(ids)


_ENQUEUE = """
import json, sys
from producers.enqueue import Producer
from worker.app import configure
from worker.settings import Settings
settings = Settings()
configure(settings)
producer = Producer(settings)
for order in json.loads(sys.argv[1]):
    producer.enqueue_order(order, "backfill")
"""


@pytest.mark.parametrize("transport, raised", [("redis", AttributeError),
                                                ("worker.broker:Transport", redis.ConnectionError)])
def test_an_ack_on_a_closed_broker_connection_is_a_connection_error_not_a_crash(transport, raised, key_prefix,
                                                                               redis_client):
    # The state a consumer restart leaves behind (kombu closed the connection and the channel's pools) for a step
    # still running: its ack then reaches kombu's _connparams with no connection. Celery survives connection errors
    # there (it logs "Couldn't ack"); kombu 5.7's AttributeError kills the worker.
    from kombu import Connection, Exchange, Queue

    queue = Queue(f"{key_prefix}.ack", Exchange(f"{key_prefix}.ack", type="direct"), routing_key="ack")
    with Connection(REDIS_URL, transport=transport) as conn:
        conn.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="ack", declare=[queue])
    conn = Connection(REDIS_URL, transport=transport)
    message = queue(conn.channel()).get(no_ack=False)
    assert message is not None
    message.channel._disconnect_pools()
    conn._do_close_transport()
    with pytest.raises(raised):
        message.ack()
    message.channel.qos._on_collect.cancel()  # no restore at exit on the closed connection; clean up here instead
    redis_client.zrem("unacked_index", message.delivery_tag)
    redis_client.hdel("unacked", message.delivery_tag)
    redis_client.delete(queue.name, f"_kombu.binding.{queue.name}", f"_kombu.binding_permanent.{queue.name}")
    # Celery's Request.acknowledge passes the transport's connection errors to Message.ack_log_error
    assert issubclass(raised, conn.connection_errors) == (raised is not AttributeError)


@pytest.mark.parametrize("transport, raised", [("redis", AttributeError),
                                                ("worker.broker:Transport", redis.ConnectionError)])
def test_closing_a_channel_after_its_connection_closed_is_a_connection_error_not_a_crash(transport, raised):
    # What a consumer does when Redis goes away under load: it closes its channel, which restores the channel's
    # unacked messages through a new client built from the connection kombu has released already.
    from kombu import Connection

    conn = Connection(REDIS_URL, transport=transport)
    channel = conn.channel()
    channel._disconnect_pools()
    conn._do_close_transport()
    with pytest.raises(raised):
        channel._connparams()
