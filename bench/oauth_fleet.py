"""OAuth acceptance run: a fleet of 16 worker processes on access tokens that live 10 seconds.

Starts the sandbox (Keap's OAuth limits, `--token-ttl 10`), authorises through its authorize page and token endpoint,
starts two `celery worker` commands of 8 prefork processes each (the first with the keeper's beat), backfills
generated orders, reads every order back (verify), and prints what the token endpoint saw: one refresh per expiry,
no `invalid_grant`. Needs Redis (REDIS_URL, default 127.0.0.1:6379/0); uses its own key prefix and queues, removed
afterwards.

    python bench/oauth_fleet.py [--orders 300] [--token-ttl 10] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from admin.auth import authorize_url, code_from, new_state  # noqa: E402
from admin.demo import _cleanup, run_env, worker_process  # noqa: E402
from admin.verify import verify_file  # noqa: E402
from producers.backfill import Backfill  # noqa: E402
from producers.enqueue import Producer  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from worker.app import app, configure  # noqa: E402
from worker.context import build_context, oauth_tokens  # noqa: E402
from worker.settings import Settings  # noqa: E402


class RefreshWatch(threading.Thread):
    """Notes when the sandbox's refresh counter moves (sampled every 50 ms)."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__(daemon=True)
        self.sb, self.at, self.stop = sb, [], threading.Event()

    def run(self) -> None:
        seen = 0
        while not self.stop.wait(0.05):
            now = self.sb.oauth.counted()["refreshes"]
            self.at += [time.monotonic()] * (now - seen)
            seen = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--token-ttl", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8, help="processes per celery worker command (2 commands)")
    args = parser.parse_args()
    run = f"oauth-fleet-{uuid.uuid4().hex[:8]}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        return _run(args, run, redis_url)
    finally:
        _cleanup(redis_url, run)


def _run(args: argparse.Namespace, run: str, redis_url: str) -> int:
    with Sandbox(port=0, limits="oauth", token_lifetime=args.token_ttl) as sb, \
            tempfile.TemporaryDirectory() as tmp:
        env = run_env(sb.base_url, redis_url, run, KEAP_API_KEY="", KEAP_CLIENT_ID="sandbox-client",
                      KEAP_CLIENT_SECRET="sandbox-secret", KEAP_REDIRECT_URI=sb.oauth_client["redirect_uri"],
                      KEAP_TOKEN_URL=sb.url + "/token", KEAP_AUTHORIZE_URL=sb.url + "/app/oauth/authorize",
                      TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(), RATE_LIMITS="oauth",
                      KEEPER_INTERVAL_SECONDS="1")
        settings = Settings(**{name.lower(): value for name, value in env.items()})
        configure(settings)
        orders = Path(tmp) / "orders.jsonl"
        subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(args.orders),
                        "--seed", "10", "--prefix", f"{run}-", "--out", str(orders)], check=True)

        # `auth login`'s steps: the authorize page (the sandbox approves at once), the redirect, the code exchange.
        state = new_state()
        landed = requests.get(authorize_url(settings, state), allow_redirects=False, timeout=10).headers["Location"]
        tokens = oauth_tokens(settings)
        tokens.authorize(code_from(landed, state)[0], settings.keap_redirect_uri)
        watch = RefreshWatch(sb)
        watch.start()
        login_at = time.monotonic()

        with ExitStack() as fleet:
            # Two `celery worker` commands of N prefork processes; the first also runs the keeper's beat.
            workers = [fleet.enter_context(worker_process(env, name=f"{run}-{n}", pool="prefork",
                                                          concurrency=args.concurrency, beat=n == 0))
                       for n in range(2)]
            deadline = time.monotonic() + 120
            while len(app.control.ping(timeout=1.0) or []) < 2:
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    print("oauth fleet: the workers did not start")
                    return 1
            started = time.monotonic()
            progress = Backfill(Producer(settings), window=args.orders).run(orders, wait=True)
            elapsed = time.monotonic() - started
        watch.stop.set()
        watch.join()
        checked, problems = verify_file(orders, None, build_context(settings))
        stats = sb.stats()
        oauth = stats["oauth"]
        unauthorized = sum(n for key, n in stats["requests"].items() if key.endswith(" 401"))
        gaps = [b - a for a, b in zip(watch.at, watch.at[1:])]
        lifetimes = (time.monotonic() - login_at) / args.token_ttl

        print(f"worker processes:      {2 * args.concurrency} (2 celery worker commands, prefork) + beat")
        print(f"access token lifetime: {args.token_ttl}s")
        print(f"orders:                {progress.total} in file, {progress.done} done, {progress.failed} failed")
        print(f"verify:                {checked} orders read back from Keap, {len(problems)} problem(s)")
        for problem in problems[:10]:
            print(f"  {problem}")
        print(f"elapsed:               {elapsed:.1f}s import; {lifetimes:.1f} token lifetimes since login")
        api_calls = sum(n for key, n in stats["requests"].items() if " /rest/" in key)
        print(f"credentials seen:      {', '.join(sorted(stats['max_per_minute']))}")
        print(f"Keap API calls:        {api_calls} ({stats['throttled_429']} answered 429, {unauthorized} answered 401)")
        print(f"token endpoint:        {oauth['code_exchanges']} code exchange(s), {oauth['refreshes']} refreshes, "
              f"{oauth['invalid_grant']} invalid_grant, {oauth['other_errors']} other errors")
        if gaps:
            print(f"between refreshes:     min {min(gaps):.1f}s, max {max(gaps):.1f}s")
        one_per_expiry = not gaps or min(gaps) > args.token_ttl / 2
        ok = (progress.done == progress.total == checked and not progress.failed and not problems
              and oauth["invalid_grant"] == 0 and one_per_expiry)
        print("oauth fleet: OK" if ok else "oauth fleet: FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
