"""Redis forgets what it acknowledged, and what durability costs.

(a) Bench (a) of issue 16: orders (cash, stored-card charges, subscriptions) are sent to a Redis of the bench's own
(appendonly, appendfsync everysec, a spare port), its AOF is copied right after the sends, a worker and the keeper
import everything into Keap (the sandbox), then the host "crashes": workers SIGKILLed, Redis killed and started again
from the copied AOF, so the ledger forgot every write. Workers start again and the backfill is sent again. Prints
how long the orders took to finish after the restart, the Keap calls it cost, and duplicates in Keap (must be 0).
(b) The cost of durability: the ledger's work per Keap write (the lost-write check, the intent, the record) on Redis
with appendfsync everysec and always (and WAITAOF where Redis >= 7.2), in ms; and orders through a worker with Keap
limited to 25 calls/s under each, in orders/s.

    python bench/redis_loss.py [--orders 24] [--settle 5] [--throughput-orders 60] [--writes 2000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from admin.demo import run_env, stop, worker_process  # noqa: E402
from producers.enqueue import Producer  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from worker.app import configure  # noqa: E402
from worker.ledger import Ledger, OrderState  # noqa: E402
from worker.settings import Settings  # noqa: E402

EXAMPLES = ROOT / "examples" / "orders.jsonl"
PORT = 26950


@contextmanager
def own_redis(directory: Path, fsync: str):
    """A redis-server of the bench's own on a spare port; yields a function that crashes it and restarts it from
    another AOF directory."""
    cmd = ["redis-server", "--port", str(PORT), "--bind", "127.0.0.1", "--dir", str(directory), "--appendonly", "yes",
           "--appendfsync", fsync, "--save", "", "--maxmemory-policy", "noeviction"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL)]

    def up():
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(PORT), "ping"], capture_output=True, text=True).stdout.strip() \
                    == "PONG":
                return
            time.sleep(0.1)
        raise SystemExit("own redis-server did not start")

    def restart_from(copy: Path):
        procs[0].kill()
        procs[0].wait()
        shutil.rmtree(directory / "appendonlydir")
        shutil.copytree(copy, directory / "appendonlydir")
        procs[0] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        up()

    up()
    try:
        yield restart_from
    finally:
        procs[0].kill()
        procs[0].wait()


def mixed_orders(run_id: str, n: int) -> list[dict]:
    rows = {row["external_id"]: row for row in map(json.loads, EXAMPLES.read_text().splitlines())}
    kinds = [rows["shop-1012"], rows["shop-1014"], rows["shop-1006"], rows["shop-1001"]]  # card, sub+pay, sub, cash
    return [{**kinds[i % 4], "external_id": f"{run_id}-{i}"} for i in range(n)]


def in_keap(sb: Sandbox, ext: str) -> tuple[int, int, int]:
    with sb.store.lock:
        orders = [o for o in sb.store.orders.values() if ext in o["custom_fields"].values()]
        subs = sum(ext in s["custom_fields"].values() for s in sb.store.subscriptions.values())
        return len(orders), sum(len(o["payments"]) for o in orders), subs


def wait_done(ledger: Ledger, ids: list[str], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if set(ledger.statuses(ids).values()) == {"done"}:
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"not done after {timeout}s: {ledger.statuses(ids)}")


def fresh_broker_connections() -> None:
    from kombu import pools

    from worker.app import app

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def lost_aof(args) -> None:
    run_id = f"loss-{uuid.uuid4().hex[:6]}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sb = stack.enter_context(Sandbox(port=0, limits="off"))
        restart_from = stack.enter_context(own_redis(Path(tmp), "everysec"))
        env = run_env(sb.base_url, f"redis://127.0.0.1:{PORT}/0", run_id, RATE_LIMITS="off",
                      REQUIRE_PERSISTENT_REDIS="true", LEDGER_DURABILITY="detect", SETTLE_SECONDS=str(args.settle),
                      LEASE_SECONDS="3", KEEPER_INTERVAL_SECONDS="1", QUEUED_STALL_SECONDS="10")
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        configure(settings)
        producer = Producer(settings)
        orders = mixed_orders(run_id, args.orders)
        ids = [o["external_id"] for o in orders]
        for one in orders:
            producer.enqueue_order(one, "backfill")
        time.sleep(1.2)  # everysec: the sends are on disk
        shutil.copytree(Path(tmp) / "appendonlydir", Path(tmp) / "copy")
        first = stack.enter_context(worker_process(env, name=f"{run_id}-a", concurrency=8))
        before = wait_done(producer.ledger, ids, 300)
        applied = {ext: in_keap(sb, ext) for ext in ids}
        calls_before = sb.stats()["total"]
        stop(first, signal.SIGKILL)
        restart_from(Path(tmp) / "copy")
        fresh_broker_connections()
        forgot = sum(s == "queued" for s in producer.ledger.statuses(ids).values())
        for one in orders:
            producer.enqueue_order(one, "backfill")
        stack.enter_context(worker_process(env, name=f"{run_id}-b", concurrency=8))
        after = wait_done(producer.ledger, ids, 600)
        now = {ext: in_keap(sb, ext) for ext in ids}
        extra = [sum(max(0, now[e][k] - (1 if k == 0 else applied[e][k])) for e in ids) for k in range(3)]
        calls_after = sb.stats()["total"] - calls_before
        print(f"(a) Redis restarted from an AOF copied right after the sends (SETTLE_SECONDS={args.settle})")
        print(f"  orders: {len(ids)} ({sum('charge_payment_method_id' in json.dumps(o) for o in orders)} charging a "
              f"stored card, {sum(bool(o.get('subscriptions')) for o in orders)} with a subscription)")
        print(f"  first import: done in {before:.1f}s, {calls_before} Keap calls")
        print(f"  after the restart: {forgot} of {len(ids)} orders back at 'queued' (the ledger forgot them)")
        print(f"  loss found: {producer.ledger.losses()[0]['why']}")
        print(f"  done again in {after:.1f}s, {calls_after} Keap calls ({calls_after / len(ids):.2f} per order: "
              "lookups that found what Keap had)")
        print(f"  duplicates in Keap: orders {extra[0]}, payments {extra[1]}, subscriptions {extra[2]}")
        print(f"  every order done: {set(producer.ledger.statuses(ids).values()) == {'done'}}")


def cost(args) -> None:
    print("(b) the cost of durability")
    version = redis.Redis.from_url("redis://127.0.0.1:6379/0").info("server")["redis_version"]
    for fsync in ("everysec", "always"):
        with tempfile.TemporaryDirectory() as tmp, own_redis(Path(tmp), fsync):
            client = redis.Redis(port=PORT)
            ledger = Ledger(client, "cost")
            mode = ledger.durability()
            ms = per_write(ledger, args.writes)
            rate = throughput(args.throughput_orders, fsync)
            print(f"  appendfsync {fsync:8s}: ledger per Keap write {statistics.mean(ms):.2f} ms mean, "
                  f"{sorted(ms)[int(len(ms) * 0.99)]:.2f} ms p99 ({mode.promise.split(' (')[0]}); "
                  f"{rate[0]:.2f} orders/s, {rate[1]:.1f} Keap calls/s at a 25/s limit")
    if tuple(int(p) for p in version.split(".")[:2]) < (7, 2):
        print(f"  WAITAOF: not measured, this Redis is {version} (it needs 7.2)")


def per_write(ledger: Ledger, n: int) -> list[float]:
    """The ledger's part of one Keap write: the lost-write check (write_once's hook), the intent (made durable as
    this Redis allows), the record of the answer."""
    ledger.register("o", {"external_id": "o"}, "live", first_step="create_order")
    times = []
    for i in range(n):
        state = OrderState("o", "running", created_at=0)
        started = time.perf_counter()
        ledger.lost_write(state, f"w{i}", 2)
        ledger.mark_intent("o", f"w{i}", None)
        ledger.record("o", {f"w{i}": "1"})
        times.append((time.perf_counter() - started) * 1000)
    return times


def throughput(n: int, fsync: str) -> tuple[float, float]:
    run_id = f"rate-{uuid.uuid4().hex[:6]}"
    with ExitStack() as stack:
        sb = stack.enter_context(Sandbox(port=0, limits="25/s,100000/min,10000000/day"))
        env = run_env(sb.base_url, f"redis://127.0.0.1:{PORT}/0", run_id, RATE_LIMITS="25/s,100000/min,10000000/day",
                      REQUIRE_PERSISTENT_REDIS="true", LEDGER_DURABILITY="disk" if fsync == "always" else "detect")
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        fresh_broker_connections()
        configure(settings)
        producer = Producer(settings)
        orders = mixed_orders(run_id, n)
        stack.enter_context(worker_process(env, name=run_id, concurrency=8))
        for one in orders:
            producer.enqueue_order(one, "backfill")
        elapsed = wait_done(producer.ledger, [o["external_id"] for o in orders], 600)
        return n / elapsed, sb.stats()["total"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=24)
    parser.add_argument("--settle", type=float, default=5.0, help="SETTLE_SECONDS of the run (default 5)")
    parser.add_argument("--throughput-orders", type=int, default=60)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    lost_aof(args)
    cost(args)


if __name__ == "__main__":
    main()
