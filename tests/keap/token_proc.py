"""A worker-like process for the OAuth race tests: its settings come from the environment, like a real worker's.

    python -m tests.keap.token_proc race THREADS START_AT STALE_FP   # threads ask for a token at START_AT (epoch s)
    python -m tests.keap.token_proc refresh                         # one forced refresh (killed mid-call by a test)

`race` prints one JSON line: the fingerprints of the access tokens its threads ended with (never a token).
"""
from __future__ import annotations

import json
import sys
import threading
import time

from worker.context import oauth_tokens
from worker.keap import CredentialRevoked, KeapError
from worker.keap.tokens import fingerprint
from worker.settings import Settings


def race(tokens, threads: int, start_at: float, stale_fp: str) -> list[str]:
    """Half the threads find the token expired (access_token), half got a 401 with it (after_unauthorized)."""
    ended: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        try:
            if i % 2:
                stale = tokens.store.read()[0].access_token
                assert fingerprint(stale) == stale_fp, "the test's stale token is not the stored one"
                tokens.after_unauthorized(stale)
            token = tokens.access_token()
            result = fingerprint(token)
        except (CredentialRevoked, KeapError) as exc:
            result = f"error: {type(exc).__name__}"
        with lock:
            ended.append(result)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    return ended


def main(argv: list[str]) -> None:
    tokens = oauth_tokens(Settings())
    if argv[0] == "race":
        print(json.dumps(race(tokens, int(argv[1]), float(argv[2]), argv[3])), flush=True)
    elif argv[0] == "refresh":
        print("refreshing", flush=True)
        tokens.refresh()
        print("refreshed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
