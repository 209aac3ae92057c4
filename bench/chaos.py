"""Chaos: does every order finish, exactly once, while workers die and Keap misbehaves?

Against the sandbox with 5 % answers 5xx and 2 % of writes applied with their answer lost, N generated orders go
through 3 `celery worker` commands (2 prefork processes each) and the keeper. With --kill, one worker command is
SIGKILLed (main process and pool) every 2–5 s and restarted, and once the Redis connections of every client are
dropped. The same run without kills comes first, for comparison. Prints orders done / failed / stalled, the
problems `verify` finds (duplicates included) and the time to the last order. Needs Redis; loopback only.

    python bench/chaos.py [--orders 300] [--seed 3] [--no-baseline] [--kill-for SECONDS] [--defaults] [--calm]

--kill-for stops the kills after that many seconds (else they go on until the backfill ends) and prints how long
after the last kill the last order finished, with what the unfinished orders waited for every 30 s after it;
--defaults runs with the production settings (120 s settle time, 15 s leases, 300 s stall time) instead of the
bench's shortened ones. CHAOS_RECORD=FILE writes what the sandbox saw of the failed orders (and every write) as JSON
lines, for a post-mortem (generated orders only: no real customer data).
"""
from __future__ import annotations

import argparse
import io
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from admin.demo import run_env, worker_answers, worker_process  # noqa: E402
from admin.verify import verify_file  # noqa: E402
from producers.backfill import Backfill  # noqa: E402
from producers.enqueue import Producer  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from worker import context  # noqa: E402
from worker.app import configure  # noqa: E402
from worker.settings import Settings  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def run(orders: int, kill: bool, seed: int, kill_for: float | None = None, defaults: bool = False,
        calm: bool = False) -> dict:
    run_id = f"chaos-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sb = stack.enter_context(Sandbox(port=0, limits="off", seed=seed, record=bool(os.environ.get("CHAOS_RECORD")),
                                         faults={
            "error_rate": 0.05, "commit_then_timeout_rate": 0.02}))
        # The sandbox applies a write at once, so 10 s of settle time is ample here (Keap's default is 120 s).
        short = {} if defaults else dict(SETTLE_SECONDS="10", LEASE_SECONDS="5", QUEUED_STALL_SECONDS="15",
                                         KEEPER_INTERVAL_SECONDS="1", MAX_RETRIES="10", RETRY_BACKOFF_CAP_SECONDS="8")
        env = run_env(sb.base_url, REDIS_URL, run_id, RATE_LIMITS="off", **short)
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        configure(settings)
        stack.callback(_cleanup, run_id)
        path = Path(tmp) / "orders.jsonl"
        subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(orders),
                        "--seed", str(seed), "--prefix", f"{run_id}-", "--out", str(path)], check=True)
        queues = f"{settings.live_queue},{settings.backfill_queue}"
        log = stack.enter_context(open(Path(tmp) / "workers.log", "w"))
        keeper = stack.enter_context(worker_process(env, queues=settings.keeper_queue, name=f"{run_id}-keeper",
                                                    concurrency=1, beat=True, errors=log))
        workers = [_start(stack, env, queues, f"{run_id}-w{i}", log) for i in range(3)]
        assert worker_answers(keeper) and all(worker_answers(w[1]) for w in workers), "workers did not start"

        started = time.monotonic()
        job = Backfill(Producer(settings), window=100, out=io.StringIO())
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(progress=job.run(path, wait=True)), daemon=True)
        thread.start()
        kills = drops = 0
        dropped, last_kill = False, None
        tail: list[str] = []  # after the last kill, every 30 s: what the unfinished orders wait for
        while thread.is_alive() and time.monotonic() - started < 1800:
            if not kill or (kill_for is not None and time.monotonic() - started > kill_for):
                if calm and last_kill is not None and not tail:
                    sb.set_faults()  # the chaos ends with the kills: what is left is recovering from it
                if last_kill is not None and len(tail) <= (time.monotonic() - last_kill) // 30:
                    tail.append(_waiting_for(context.ledger(settings), time.monotonic() - last_kill))
                thread.join(1)
                continue
            time.sleep(random.uniform(2, 5))
            index = random.randrange(len(workers))
            os.killpg(workers[index][1].pid, signal.SIGKILL)
            workers[index][0].close()
            workers[index] = _start(stack, env, queues, f"{run_id}-w{index}-{kills}", log)
            kills += 1
            last_kill = time.monotonic()
            if not dropped and time.monotonic() - started > 20:
                drops = redis.Redis.from_url(REDIS_URL).client_kill_filter(_type="normal", skipme=True)
                dropped = True
        elapsed = time.monotonic() - started
        after_last_kill = time.monotonic() - last_kill if last_kill is not None else None
        thread.join(5)
        ledger = context.ledger(settings)
        statuses = {s: ledger.count(s) for s in ("done", "failed", "queued", "running", "waiting", "cancelled")}
        failures = [f"{ext}: {ledger.get(ext).error}" for ext in ledger.ids_with_status("failed", 1000)]
        if os.environ.get("CHAOS_RECORD"):  # what Keap saw of each failed order, for a post-mortem
            import json
            wanted = {ledger.get(ext).results.get("order_id") for ext in ledger.ids_with_status("failed", 1000)}
            with open(os.environ["CHAOS_RECORD"], "w") as out:
                for ex in sb.exchanges:
                    if any(w and f"/orders/{w}" in ex.get("path", "") for w in wanted) or ex.get("method") == "POST":
                        out.write(json.dumps(ex, default=str) + "\n")
        sb.set_faults()  # from here on Keap answers normally: the operator's turn, then verify
        confirmed = _operator_confirms_charges(ledger, settings, sb)
        checked, problems = verify_file(path, None, context.build_context(settings))
        return {"elapsed": elapsed, "after_last_kill": after_last_kill, "statuses": statuses, "kills": kills,
                "dropped_connections": drops,
                "checked": checked, "problems": problems, "duplicates": _duplicates(sb, path), "failures": failures,
                "confirmed": confirmed, "done_after_operator": ledger.count("done"),
                "finished": "progress" in result, "calls": sb.stats()["total"], "resends": _resends(ledger, path),
                "tail": tail}


def _waiting_for(ledger, since: float) -> str:
    """One line: the orders not finished yet, and the reasons of the waiting ones (ids and customer data left out)."""
    left = sum(ledger.count(s) for s in ("queued", "running", "waiting"))
    reasons: dict[str, int] = {}
    for ext in ledger.ids_with_status("waiting", 1000):
        state = ledger.get(ext)
        reason = re.sub(r"(order \S+: |\d+(\.\d+)?s?)", "", (state and state.parked_reason) or "?").strip()
        reasons[reason[:60]] = reasons.get(reason[:60], 0) + 1
    top = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])[:4])
    # A queued order's message: held by a live worker (prefetched, a retry's countdown), by a gone one (the keeper
    # re-sends it within a minute), or by none yet (on its way, or lost: the stall time).
    held = [ledger.holder(ext) for ext in ledger.ids_with_status("queued", 1000)]
    live, gone = sum(1 for h in held if h and h.alive), sum(1 for h in held if h and not h.alive)
    return f"+{since:.0f}s: {ledger.count('done')} done, {left} in flight ({len(held)} queued: {live} held by a " \
           f"live worker, {gone} by a gone one, {len(held) - live - gone} by none; " \
           f"{ledger.count('running')} running)" + (f"; waiting: {top}" if top else "")


def _start(stack: ExitStack, env: dict, queues: str, name: str, log):
    inner = ExitStack()
    proc = inner.enter_context(worker_process(env, queues=queues, name=name, pool="prefork", concurrency=2,
                                              beat=False, errors=log))
    stack.callback(inner.close)
    return inner, proc


def _operator_confirms_charges(ledger, settings, sb) -> int:
    """What an operator does for a card charge whose answer was lost: look in Keap (here: the sandbox's payments
    of the order) and, when no charge went through, `keap-orders retry ID --charges-checked`."""
    waiting = [ext for ext in ledger.ids_with_status("failed", 1000) if "--charges-checked" in ledger.get(ext).error]
    for ext in waiting:
        keap_id = ledger.get(ext).results["order_id"]
        with sb.store.lock:
            charged = [p for p in sb.store.orders[keap_id]["payments"] if p["method_id"] and p["pay_status"] != "FAILED"]
        assert not charged, f"{ext}: Keap holds a charge the worker could not find"
        Producer(settings, ledger).retry_order(ext, charges_checked=True)
    deadline = time.monotonic() + 300
    while waiting and time.monotonic() < deadline and any(s != "done" for s in ledger.statuses(waiting).values()):
        time.sleep(0.5)
    return len(waiting)


def _duplicates(sb, path: Path) -> list[str]:
    """Orders Keap holds more than once, and orders with more payments in Keap than in the file."""
    import json

    found = []
    with sb.store.lock:
        for line in path.read_text().splitlines():
            order = json.loads(line)
            kept = [o for o in sb.store.orders.values() if order["external_id"] in o["custom_fields"].values()]
            paid = [p for o in kept for p in o["payments"] if p["pay_status"] != "FAILED"]
            if len(kept) > 1 or len(paid) > len(order.get("payments", [])):
                found.append(f"{order['external_id']}: {len(kept)} Keap orders, {len(paid)} payments")
    return found


def _resends(ledger, path: Path) -> int:
    import json

    ids = [json.loads(line)["external_id"] for line in path.read_text().splitlines() if line.strip()]
    return sum(ledger.get(ext).resends for ext in ids if ledger.get(ext))


def _cleanup(run_id: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{run_id}*", count=1000):
        client.delete(key)


def report(name: str, figures: dict) -> None:
    s = figures["statuses"]
    stalled = s["queued"] + s["running"] + s["waiting"]
    print(f"{name}: done {s['done']}, failed {s['failed']}, stalled {stalled}; time to last order "
          f"{figures['elapsed']:.0f}s; worker kills {figures['kills']}, Redis connections dropped "
          f"{figures['dropped_connections']}; keeper re-sends {figures['resends']}; Keap calls {figures['calls']}")
    if figures["after_last_kill"] is not None:
        print(f"  last order done {figures['after_last_kill']:.0f}s after the last kill")
        for line in figures["tail"]:
            print(f"    {line}")
    for failure in figures["failures"]:
        print(f"  failed {failure}")
    print(f"  after the operator checked {figures['confirmed']} card charge(s) in Keap and retried them: done "
          f"{figures['done_after_operator']}; verify: {figures['checked']} checked, {len(figures['problems'])} "
          f"problem(s); duplicates in Keap: {len(figures['duplicates'])}")
    for problem in (figures["problems"] + figures["duplicates"])[:10]:
        print(f"  {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="only the run with kills")
    parser.add_argument("--kill-for", type=float, help="stop killing after this many seconds")
    parser.add_argument("--defaults", action="store_true", help="the production settings, not the shortened ones")
    parser.add_argument("--calm", action="store_true",
                        help="with --kill-for: Keap's faults (5xx, lost answers) end with the kills")
    args = parser.parse_args()
    baseline = None if args.no_baseline else run(args.orders, kill=False, seed=args.seed, defaults=args.defaults)
    if baseline:
        report("without kills", baseline)
    chaos = run(args.orders, kill=True, seed=args.seed, kill_for=args.kill_for, defaults=args.defaults,
                calm=args.calm)
    report("with kills   ", chaos)
    if baseline:
        print(f"time ratio (with kills / without): {chaos['elapsed'] / baseline['elapsed']:.2f}")
    ok = chaos["done_after_operator"] == args.orders and not chaos["problems"] and not chaos["duplicates"]
    print("chaos: OK" if ok else "chaos: NOT OK")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
