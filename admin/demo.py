"""`keap-orders demo`: the whole pipeline on one machine — sandbox, a worker subprocess, a backfill, a summary."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Iterator

import redis

from sandbox.auth import API_KEY as SANDBOX_KEY

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "orders.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_for_demo(url: str) -> Iterator[str]:
    """The configured Redis if it answers; else a throwaway local redis-server; else say what to install."""
    if _answers(url):
        yield url
        return
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit(
            f"demo: nothing answers at REDIS_URL={url} and redis-server is not installed.\n"
            "Install Redis (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) "
            "or point REDIS_URL at a running Redis, then run the demo again."
        )
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    local = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if _answers(local):
                break
            time.sleep(0.05)
        print(f"demo: started a local redis-server on port {port} (nothing answered at {url})")
        yield local
    finally:
        proc.terminate()
        proc.wait(10)


def run_env(base_url: str, redis_url: str, run_id: str, **overrides: str) -> dict[str, str]:
    """Settings (as environment) of a run on its own key prefix and queues: it neither sees nor disturbs anything
    else on this Redis."""
    return {
        "KEAP_BASE_URL": base_url, "KEAP_API_KEY": SANDBOX_KEY, "REDIS_URL": redis_url,
        "KEY_PREFIX": run_id, "LIVE_QUEUE": f"{run_id}.live", "BACKFILL_QUEUE": f"{run_id}.backfill",
        "KEEPER_QUEUE": f"{run_id}.keeper",
        "REQUIRE_PERSISTENT_REDIS": "false",  # a throwaway Redis may be all a first try has
        **overrides,
    }


@contextmanager
def worker_process(env: dict[str, str], *, queues: str | None = None, name: str = "demo", pool: str = "threads",
                   concurrency: int = 4, beat: bool = True, output: int | None = subprocess.DEVNULL,
                   errors: int | IO | None = None, loglevel: str = "WARNING",
                   events: bool = False) -> Iterator[subprocess.Popen]:
    """A `celery worker` subprocess (its own process group, so it can be killed whole) on the run's queues; with
    `beat`, the keeper's schedule is embedded (-B); with `events`, it sends task events (-E, what Flower shows).
    In production the keeper runs on its own (Procfile)."""
    queues = queues or ",".join(env[k] for k in ("LIVE_QUEUE", "BACKFILL_QUEUE", "KEEPER_QUEUE"))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "celery", "--quiet", "-A", "worker.app", "worker", "-Q", queues, "--pool", pool,
               "--concurrency", str(concurrency), "--loglevel", loglevel, "--without-gossip", "--without-mingle",
               "--hostname", f"{name}-{os.getpid()}@%h"]
        if events:
            cmd.append("-E")
        if beat:
            cmd += ["--beat", "--schedule", os.path.join(tmp, "beat-schedule")]
        # Celery warns at length when run as root (containers, CI); the demo is not the place for it.
        quiet = {"PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges"}
        proc = subprocess.Popen(cmd, env={**os.environ, **env, **quiet}, stdout=output, stderr=errors,
                                start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20) -> None:
    """Stop a worker and its pool processes (the whole process group)."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(wait)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_answers(proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Wait until the worker answers a ping; False if it exits first (it refused to start) or never answers."""
    from worker.app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if app.control.ping(timeout=0.5):
            return True
    return False


def _probe(settings) -> int:
    """`doctor --probe` against the demo's sandbox; returns the Keap calls it took (not counted as the import's)."""
    from admin.doctor import Report
    from admin.probe import run as probe
    from worker.context import build_context

    ctx = build_context(settings)
    probe(ctx, Report())
    print(f"doctor --probe: {ctx.keap.calls} Keap calls, the findings stored for the worker")
    return ctx.keap.calls


def run_demo(orders: Path | None = None) -> int:
    from sandbox.server import Sandbox
    from worker.app import configure
    from worker.settings import Settings

    orders = orders or EXAMPLES
    run_id = f"demo-{int(time.time())}-{os.getpid()}"
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_for_demo(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")))
        sb = stack.enter_context(Sandbox(port=0, api_key=SANDBOX_KEY, limits="oauth"))
        env = run_env(sb.base_url, redis_url, run_id, RATE_LIMITS="oauth")  # the sandbox's default limits
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        configure(settings)
        from producers.backfill import Backfill
        from producers.enqueue import Producer

        print(f"demo: sandbox at {sb.url}, importing {orders.name} through a Celery worker")
        stack.callback(_cleanup, redis_url, run_id)  # runs after the worker has stopped
        worker = stack.enter_context(worker_process(env))
        if not worker_answers(worker):
            print("demo: the worker did not start (see its message above)")
            return 1
        probed = _probe(settings)  # as an operator runs `keap-orders doctor --probe` before a backfill
        started = time.monotonic()
        progress = Backfill(Producer(settings), window=50).run(orders, wait=True)
        elapsed = time.monotonic() - started
        stats = sb.stats()
        calls = stats["total"] - probed
        imported = progress.done
        print(progress.summary(waited=True))
        print(f"Keap calls:     {calls} ({stats['throttled_429']} answered 429)")
        print(f"calls/order:    {calls / imported:.2f}" if imported else "calls/order:    -")
        print(f"elapsed:        {elapsed:.1f}s")
        ok = imported == progress.valid and not progress.failed
        print("demo: OK" if ok else "demo: some valid orders were not imported (see above)")
        return 0 if ok else 1


def _cleanup(redis_url: str, run_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{run_id}*", count=1000):
        client.delete(key)
