"""The shared throttle against Celery's per-worker `rate_limit`, side by side, on the same backfill.

Each run: a sandbox (its own process, real-time priority where allowed: see `sandbox`) limited to R calls/s and
60·R/min, answering in 50–150 ms; two `celery worker` subprocess commands of 4 prefork processes each (8 processes,
the first also runs the keeper); a backfill of generated orders, 40 in flight, and meanwhile one live order a second. The measurement ends when the backfill is
done or after --max-seconds; utilisation is the sandbox's accepted calls over R × (its first call to the end).
The baseline switches the shared throttle off (RATE_LIMITS=off, ACCOUNT_RATE_LIMITS=off) and puts Celery's
`rate_limit` on every step task instead: the limit split over the worker commands and the ~3 calls of an order.
Needs Redis (REDIS_URL, default 127.0.0.1:6379/0); loopback only.

    python bench/throttle.py [--rates 10,25] [--orders 1000] [--max-seconds 100]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import redis  # noqa: E402

from generate_orders import generate  # noqa: E402
from admin.demo import run_env, worker_process  # noqa: E402
from worker.ledger import ACTIVE  # noqa: E402

COMMANDS, PROCESSES = 2, 4  # celery worker commands x prefork processes each
# Orders in flight: small enough that the queue mixes the steps of many orders (the steps without Keap calls
# do not come in waves that leave the limit unused), large enough that no process waits for work.
WINDOW = 40
LOG = Path(tempfile.gettempdir()) / "bench-throttle-workers.log"
PRIORITY = ["unknown"]  # the sandbox process's scheduling, printed with the results
CALLS_PER_ORDER = 3  # what bench/calls_per_order.py measures for generated files; the baseline's budget per order


@dataclass
class Result:
    mode: str
    setting: str
    active: float = 0.0
    allowed: float = 0.0
    made: int = 0
    throttled: int = 0
    max_second: int = 0
    max_minute: int = 0
    orders_done: int = 0
    live: list[float] = field(default_factory=list)
    live_sent: int = 0

    def row(self) -> dict[str, str]:
        calls = self.made + self.throttled
        live = sorted(self.live)
        pct = (lambda p: f"{live[min(len(live) - 1, int(p * len(live)))]:.2f}") if live else (lambda p: "-")
        return {
            "setting": self.setting,
            "active period (s)": f"{self.active:.1f}",
            "calls allowed (limit x active)": f"{self.allowed:.0f}",
            "calls made (accepted)": str(self.made),
            "utilisation": f"{self.made / self.allowed:.3f}" if self.allowed else "-",
            "429 answers": f"{self.throttled} ({100 * self.throttled / max(calls, 1):.2f} %)",
            "max calls in any 1 s": str(self.max_second),
            "max calls in any 60 s": str(self.max_minute),
            "backfill orders done": str(self.orders_done),
            "live orders done / sent": f"{len(live)} / {self.live_sent}",
            "live time to done p50 (s)": pct(0.5),
            "live time to done p95 (s)": pct(0.95),
        }


@contextmanager
def sandbox(limits: str):
    """The sandbox in its own process and, where allowed, at real-time priority.

    It stands for Keap, whose clock does not share two CPU cores with the workers it counts. At normal priority
    on a small machine, the sandbox counted calls up to 45 ms after they were written to its socket whenever the
    8 workers (and anything else) kept both cores busy, and it saw that lag as bursts of ours (measured: socket
    write to the sandbox's clock p99.9 18-45 ms; at real-time priority 6 ms, max 7). It uses a tenth of a core.
    """
    cmd = [sys.executable, "-m", "sandbox", "--port", "0", "--limits", limits, "--latency-ms", "50,150"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=_realtime)
    try:
        line = proc.stdout.readline()  # "Keap sandbox base URL: http://127.0.0.1:PORT/crm  (...)"
        base_url = line.split("base URL: ", 1)[1].split()[0]
        PRIORITY[0] = sandbox_priority(proc.pid)
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
        yield base_url
    finally:
        proc.terminate()
        proc.wait(10)


def _realtime() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):  # not permitted (no root / CAP_SYS_NICE) or not Linux: normal priority
        pass


def sandbox_priority(pid: int) -> str:
    try:
        return "real-time" if os.sched_getscheduler(pid) == os.SCHED_FIFO else "normal"
    except (OSError, AttributeError):
        return "unknown"


def sandbox_stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.rsplit("/crm", 1)[0] + "/__sandbox__/stats", timeout=10) as answer:
        return json.load(answer)


@contextmanager
def workers(env: dict[str, str], run: str, log: Path):
    """COMMANDS separate `celery worker` commands of PROCESSES prefork processes each, on both lanes; the first
    one also runs the keeper (which releases parked orders). Their logs go to `log`."""
    with ExitStack() as stack, open(log, "a") as errors:
        for n in range(COMMANDS):
            queues = ",".join(env[k] for k in ("LIVE_QUEUE", "BACKFILL_QUEUE", "KEEPER_QUEUE")[:3 if n == 0 else 2])
            stack.enter_context(worker_process(env, queues=queues, name=f"{run}-{n}", pool="prefork",
                                               concurrency=PROCESSES, beat=n == 0, errors=errors))
        yield


def wait_ready(app, run: str, timeout: float = 60) -> None:
    names = {f"{run}-{n}-{os.getpid()}" for n in range(COMMANDS)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with app.connection_for_write() as conn:
                replies = app.control.ping(timeout=1.0, connection=conn) or []
        except (OSError, redis.RedisError) as exc:  # a broker hiccup: ask again
            print(f"  (ping: {type(exc).__name__}; asking again)", flush=True)
            continue
        if names <= {name.split("@")[0] for reply in replies for name in reply}:
            return
    raise SystemExit(f"bench: the celery workers of {run} did not answer within {timeout:.0f}s")


def one_run(mode: str, rate: int, orders_path: Path, live_orders: list[dict], max_seconds: float,
            redis_url: str) -> Result:
    from producers.enqueue import Producer
    from producers.sources import read_file
    from worker.app import app, configure
    from worker.settings import Settings

    run = f"bench-thr-{uuid.uuid4().hex[:8]}"
    limits = f"{rate}/s,{rate * 60}/min"
    per_task = rate * 60 // (COMMANDS * CALLS_PER_ORDER)
    setting = (f"RATE_LIMITS={limits}" if mode == "throttle"
               else f"rate_limit {per_task}/m per step task per worker command")
    result = Result(mode, setting)
    # The sandbox outlives the workers: they are stopped (and finish their calls) before it is.
    with sandbox(limits) as base_url, ExitStack() as stack:
        env = run_env(base_url, redis_url, run, RATE_LIMITS=limits if mode == "throttle" else "off",
                      ACCOUNT_RATE_LIMITS="10000/min,250000/day" if mode == "throttle" else "off", MAX_RETRIES="20")
        if mode == "baseline":
            # Celery's own rate_limit on every step task, through a config module only the baseline's workers load.
            conf = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            (conf / "bench_rate_limit_conf.py").write_text(
                f"task_annotations = {{'*': {{'rate_limit': '{per_task}/m'}}}}\n")
            env["CELERY_CONFIG_MODULE"] = "bench_rate_limit_conf"
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(conf), os.environ.get("PYTHONPATH")]))
        settings = Settings(**{k.lower(): v for k, v in env.items() if k not in ("CELERY_CONFIG_MODULE", "PYTHONPATH")})
        configure(settings)
        producer = Producer(settings)
        ledger = producer.ledger
        stack.callback(_cleanup, redis_url, run)
        stack.enter_context(workers(env, run, LOG))
        wait_ready(app, run)

        stop = threading.Event()
        backfill_done: list[str] = []
        live_times: dict[str, float] = {}
        live_done: dict[str, float] = {}

        def backfill() -> None:
            in_flight: set[str] = set()
            for row in read_file(orders_path):
                while len(in_flight) >= WINDOW and not stop.is_set():
                    _settle(ledger, in_flight, backfill_done)
                    time.sleep(0.2)
                if stop.is_set():
                    return
                producer.enqueue_order(row.order, "backfill")
                in_flight.add(row.order.external_id)
            while in_flight and not stop.is_set():
                _settle(ledger, in_flight, backfill_done)
                time.sleep(0.2)

        def live() -> None:
            for order in live_orders:
                if stop.is_set() or not feeder.is_alive():
                    return
                sent = time.monotonic()
                producer.enqueue_order(order, "live")
                live_times[order["external_id"]] = sent  # watched once the ledger knows it
                stop.wait(1.0)

        def watch_live() -> None:
            while not (stop.is_set() and len(live_done) >= len(live_times)):
                pending = [e for e in live_times if e not in live_done]
                for ext, status in (ledger.statuses(pending) if pending else {}).items():
                    if status not in ACTIVE:  # queued, running, or waiting to be retried
                        live_done[ext] = time.monotonic() if status == "done" else float("nan")
                time.sleep(0.05)

        started = time.monotonic()
        feeder = threading.Thread(target=backfill, daemon=True)
        feeder.start()
        sender = threading.Thread(target=live, daemon=True)
        sender.start()
        watcher = threading.Thread(target=watch_live, daemon=True)
        watcher.start()
        feeder.join(max_seconds)
        stats = sandbox_stats(base_url)  # the measured period ends here
        ended = time.time()
        stop.set()
        sender.join()
        watcher.join(30)  # live orders sent during the backfill may still be finishing

        activity = stats["activity"].get("api-key") or {}
        first, last = activity.get("first"), activity.get("last")
        if first is not None:
            # Until the last call if the backfill finished, else until the measurement stopped.
            result.active = (last if not feeder.is_alive() else ended) - first
        result.allowed = rate * result.active
        result.throttled = stats["throttled_429"]
        result.made = stats["total"] - result.throttled
        result.max_second = activity.get("max_per_second", 0)
        result.max_minute = activity.get("max_per_minute", 0)
        result.orders_done = len(backfill_done)
        result.live_sent = len(live_times)
        result.live = [live_done[e] - live_times[e] for e in live_times
                       if e in live_done and live_done[e] == live_done[e]]
        pending = [e for e in live_times if e not in live_done]
        print(f"  {mode}: {result.orders_done} backfill orders, {stats['total']} calls in "
              f"{time.monotonic() - started:.0f}s" + (f"; live orders not done 30 s after the end: "
              f"{dict(Counter(ledger.statuses(pending).values()))}" if pending else ""), flush=True)
    return result


def _settle(ledger, in_flight: set[str], done: list[str]) -> None:
    for ext, status in ledger.statuses(in_flight).items():
        if status not in ACTIVE:
            in_flight.discard(ext)
            if status == "done":
                done.append(ext)


def _cleanup(redis_url: str, run: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{run}*", count=1000):
        client.delete(key)


def print_table(rate: int, results: list[Result]) -> None:
    rows = [r.row() for r in results]
    print(f"\nLimit {rate}/s and {rate * 60}/min; sandbox latency 50-150 ms, {PRIORITY[0]} priority; {COMMANDS} celery "
          f"worker commands x {PROCESSES} prefork processes; one live order a second during the backfill")
    width = max(len(k) for k in rows[0])
    titles = {"throttle": "shared throttle", "baseline": "celery rate_limit (baseline)"}
    print(f"{'':{width}}" + "".join(f"  {titles[r.mode]:>38}" for r in results))
    for key in rows[0]:
        print(f"{key:{width}}" + "".join(f"  {row[key]:>38}" for row in rows))
    print(f"{'limit in any 1 s / 60 s':{width}}" + f"  {f'{rate} / {rate * 60}':>38}" * len(rows), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,25", help="calls per second to run at, comma-separated")
    parser.add_argument("--orders", type=int, default=1000, help="backfill orders per run")
    parser.add_argument("--max-seconds", type=float, default=100, help="end a run's measurement after this long")
    parser.add_argument("--modes", default="throttle,baseline")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    LOG.write_text("")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (int(r) for r in args.rates.split(",")):
            results = []
            for mode in args.modes.split(","):
                tag = f"{mode}-{rate}-{uuid.uuid4().hex[:6]}"
                path = Path(tmp) / f"{tag}.jsonl"
                subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count",
                                str(args.orders), "--seed", "11", "--prefix", f"{tag}-", "--out", str(path)], check=True)
                live = list(generate(int(args.max_seconds) + 30, 23, f"{tag}-live-"))
                results.append(one_run(mode, rate, path, live, args.max_seconds, redis_url))
            print_table(rate, results)
    print(f"\nworker logs: {LOG}")


if __name__ == "__main__":
    main()
