"""The console with many orders in the ledger: time per page and Redis commands per page, to show that pages read
indexes (status sets, the counts by lane, the watch and done sorted sets by score with a limit, one order's hash, the
search indexes by email and Keap id, the failed set, the jobs index) and never every order.

Starts its own redis-server on a free port (INFO commandstats then counts the console's commands only), writes the
orders through the ledger's register (and claim/finish, fail, park for a realistic mix), serves the app in-process
on uvicorn and requests each page five times.

    python bench/console_pages.py [--orders 10000,100000] [--failed 2000]
"""
from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
import requests
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from admin.web.app import create_app  # noqa: E402
from admin.web.console.users import hash_password  # noqa: E402
from producers.jobs import Jobs  # noqa: E402
from sandbox.auth import API_KEY  # noqa: E402
from worker.app import configure  # noqa: E402
from worker.ledger import Ledger  # noqa: E402
from worker.pipeline import FIRST, STEP_NAMES  # noqa: E402
from worker.settings import Settings  # noqa: E402

MESSAGE = {"external_id": "", "order_time": "2024-03-05T14:22:10Z",
           "customer": {"email": "bench@example.com"}, "items": [{"sku": "TSHIRT-M", "quantity": 1,
                                                                 "unit_price": "19.90"}]}
REPEAT = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fill(ledger: Ledger, orders: int, failed: int, parked: int, done: int) -> None:
    """`orders` registered Shopify orders (two per customer email, every tenth in the live lane); of them `done`
    finished (with a Keap order id 500000 + n and contact id 700000 + n // 2), `failed` failed and `parked`
    waiting."""
    start = time.monotonic()
    tickets = {}
    for n in range(orders):
        ext = f"shopify:{1000 + n}"
        message = {**MESSAGE, "external_id": ext, "customer": {"email": f"c{n // 2}@example.com"}}
        tickets[ext] = ledger.register(ext, message, "live" if n % 10 == 0 else "backfill", first_step=FIRST)[3]
    ids = list(tickets)
    for n, ext in enumerate(ids[:done]):
        ledger.claim(ext, FIRST, "t", 30_000, tickets[ext], STEP_NAMES)
        ledger.record(ext, {"order_id": str(500_000 + n), "contact_id": str(700_000 + n // 2)}, "t")
        ledger.finish(ext, token="t", ticket=tickets[ext])
    for ext in ids[done:done + failed]:
        ledger.fail(ext, step=FIRST, kind="rejected",
                    error=f"order {ext}: items[0].sku: SKU 'MUG-{hash(ext) % 7}' is not a product in Keap")
    now = ledger.now()
    for ext in ids[done + failed:done + failed + parked]:
        ledger.claim(ext, FIRST, "t", 30_000, tickets[ext], STEP_NAMES)
        ledger.park(ext, token="t", ticket=tickets[ext], step=FIRST, until=now + 3600, reason="daily quota")
    print(f"  wrote {orders:,} orders ({done:,} done, {failed:,} failed, {parked:,} parked, the rest queued) "
          f"in {time.monotonic() - start:.0f}s")


def calls(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def measure(client: redis.Redis, session: requests.Session, method: str, url: str, **kw) -> tuple[float, float, dict]:
    """(median ms, Redis commands per request, commands by name per request) over REPEAT requests."""
    times, before = [], calls(client)
    for _ in range(REPEAT):
        t = time.perf_counter()
        answer = session.request(method, url, timeout=60, **kw)
        times.append((time.perf_counter() - t) * 1000)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    after = calls(client)
    delta = {k: (after.get(k, 0) - before.get(k, 0)) / REPEAT for k in after if after.get(k, 0) != before.get(k, 0)}
    delta.pop("info", None)  # the bench's own INFO commandstats
    return statistics.median(times), sum(delta.values()), delta


def run(redis_url: str, client: redis.Redis, orders: int, failed: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(redis_url=redis_url, key_prefix=prefix, keap_api_key=API_KEY, require_persistent_redis=False,
                        console_users=f"op:{hash_password('benchpass', iterations=1000)}:admin",
                        console_secure_cookie=False, live_queue=f"{prefix}.live", backfill_queue=f"{prefix}.backfill",
                        keeper_queue=f"{prefix}.keeper")
    configure(settings)
    app = create_app(settings)
    ledger = app.state.producer.ledger
    fill(ledger, orders, failed, parked=min(500, orders // 20), done=orders // 5)
    job = Jobs(ledger).create("/data/orders.jsonl", "jsonl", {}, 200)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/console"
    s = requests.Session()
    s.get(base + "/login")
    s.post(base + "/login", data={"name": "op", "password": "benchpass", "csrf": s.cookies["keap_console_login"]})
    group = s.get(base + "/failed").text.split("/console/failed/")[1].split("/retry")[0]
    pages = [("overview", "GET", "/", {}), ("search #1500", "POST", "/orders", {"data": {"q": "#1500"}}),
             ("search email (2)", "POST", "/orders", {"data": {"q": "c250@example.com"}}),
             ("search Keap id", "POST", "/orders", {"data": {"q": "500500"}}),
             ("order", "GET", "/orders/shopify:1500", {}), ("failed (grouped)", "GET", "/failed", {}),
             ("bulk-retry preview", "GET", f"/failed/{group}/retry", {}), ("stuck & parked", "GET", "/stuck", {}),
             ("jobs", "GET", "/jobs", {}), ("job", "GET", f"/jobs/{job.id}", {})]
    print(f"  {'page':<22}{'ms (median)':>12}{'Redis cmds':>12}  commands per request")
    for name, method, path, kw in pages:
        ms, total, by = measure(client, s, method, base + path, **kw)
        shown = ", ".join(f"{k} {v:g}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:6])
        print(f"  {name:<22}{ms:>12.1f}{total:>12.0f}  {shown}")
    server.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="10000,100000", help="Ledger sizes, comma-separated.")
    parser.add_argument("--failed", type=int, default=2000, help="Failed orders among them.")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--dir", tmp,
                                   "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                                  stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            for orders in (int(n) for n in args.orders.split(",")):
                print(f"console pages with {orders:,} orders in the ledger (own redis-server on :{port}):")
                run(f"redis://127.0.0.1:{port}/0", client, orders, min(args.failed, orders // 10))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
