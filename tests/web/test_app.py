"""The HTTP service as a process: `keap-orders serve` answers its probes and its OpenAPI document over real HTTP,
and says "not ready" (503, Retry-After) while Redis is away, without a restart."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(env: dict[str, str], *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # Its log goes to a file: a pipe nobody reads would fill and stop the server mid-run.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "admin.cli", "serve", "--port", str(port), *options], cwd=ROOT,
                               env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/healthz", timeout=1)
            process.log_file = log
            return process, url
        except requests.ConnectionError:
            if process.poll() is not None:
                log.seek(0)
                raise AssertionError(log.read().decode())
            time.sleep(0.1)
    process.kill()
    raise AssertionError("keap-orders serve did not answer within 30 s")


def server_log(process: subprocess.Popen) -> bytes:
    """What a server started by `serve` has logged so far."""
    process.log_file.seek(0)
    return process.log_file.read()


def test_probes_and_the_openapi_document(redis_client, key_prefix):
    from tests.conftest import REDIS_URL

    process, url = serve({"REDIS_URL": REDIS_URL, "KEY_PREFIX": key_prefix})
    try:
        assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
        assert requests.get(url + "/openapi.json", timeout=5).json()["info"]["title"] == "keap-orders"
    finally:
        process.terminate()
        process.wait(10)


def test_without_redis_it_is_alive_but_not_ready():
    process, url = serve({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    try:
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        answer = requests.get(url + "/readyz", timeout=15)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    finally:
        process.terminate()
        process.wait(10)
    assert b"Traceback" not in server_log(process)
