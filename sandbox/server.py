"""The sandbox HTTP server: Keap's paths, auth, limits and faults in front of the Store; plus `/__sandbox__` admin."""
from __future__ import annotations

import json
import logging
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from sandbox.admin import ADMIN_PREFIX, admin_answer
from sandbox.auth import API_KEY, AUTHORIZE_PATH, OAuth, TokenError
from sandbox.faults import FaultConfig, Faults
from sandbox.httpserver import QuietServer
from sandbox.limits import THROTTLED_BODY, Limits, RateLimiter
from sandbox.readings import READINGS, parse_readings
from sandbox.routes import route_table
from sandbox.spec import load_spec
from sandbox.store import ApiError, Store, load_seed

logger = logging.getLogger(__name__)

API_PREFIX = "/crm"
# Keap v2 follows Google's API conventions; these canonical names are our assumption for `Error.status`.
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                405: "METHOD_NOT_ALLOWED", 409: "ALREADY_EXISTS", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                502: "UNAVAILABLE", 503: "UNAVAILABLE"}
_FAULT_MESSAGES = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def error_body(status: int, message: str) -> dict:
    return {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN"), "details": []}


class _Reply(Exception):
    """Stops handling with this answer (used for early exits: auth, limits, faults, bad input)."""

    def __init__(self, status: int, body, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class Sandbox:
    """A local Keap over real HTTP; see sandbox/README in the project README for the wire surface."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str = API_KEY,
                 limits: str | None = "oauth", latency_ms: float | list = 0, seed: int | None = None,
                 data: str | Path | dict | None = None, token_lifetime: int = 86400, record: bool = False, *,
                 faults: dict | None = None, clock: Callable[[], float] = time.time,
                 spec_path: str | Path | None = None, tenant_limits: str | None = "tenant",
                 readings: list[str] | str | None = None):
        self.host, self.port, self.api_key, self.record = host, port, api_key, record
        self.limits_text = limits or "off"
        self.spec = load_spec(spec_path)
        self.clock = clock
        readings = sorted(parse_readings(readings))
        self.faults = Faults(seed, FaultConfig.from_dict({"latency_ms": latency_ms, "readings": readings,
                                                          **(faults or {})}))
        self.store = Store(load_seed(data), clock, self.faults.reading)
        # Credential limits (`limits`) and the account's (`tenant_limits`, Keap's 10,000/min + 250,000/day).
        self.limiter = RateLimiter(Limits.parse(limits), clock, Limits.parse(tenant_limits))
        self.oauth = OAuth(clock, token_lifetime)
        self.exchanges: list[dict] = []
        self._stats_lock = threading.Lock()
        self._reset_counters()
        self._stopping = threading.Event()
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None
        self.routes = route_table(self.store, self.faults, self.spec)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Sandbox":
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        self._server = QuietServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"keap-sandbox-{self.port}", daemon=True)
        self._thread.start()
        logger.info("sandbox serving at %s (limits %s)", self.base_url, self.limits_text)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled commit-then-timeout handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def oauth_client(self) -> dict:
        return dict(self.oauth.client)

    # ------------------------------------------------------------------ admin
    def set_faults(self, **faults) -> None:
        self.faults.set(faults)

    def _reset_counters(self) -> None:
        with self._stats_lock:
            self._requests: dict[str, int] = {}
            self._total = 0
            self._throttled = 0

    def stats(self) -> dict:
        per_second, per_minute = self.limiter.peaks()
        with self._stats_lock:
            return {"requests": dict(self._requests), "total": self._total, "throttled_429": self._throttled,
                    "max_per_second": per_second, "max_per_minute": per_minute, "oauth": self.oauth.counted(),
                    "activity": self.limiter.activity()}

    def reset(self) -> None:
        """Seed data back, counters and limits zeroed, tokens revoked; faults and recorded exchanges stay."""
        self.store.reset()
        self.limiter.reset()
        self.oauth.reset()
        self.faults.reseed()
        self._reset_counters()

    def _count(self, method: str, template: str, status) -> None:
        with self._stats_lock:
            key = f"{method} {template} {status}"
            self._requests[key] = self._requests.get(key, 0) + 1
            self._total += 1
            if status == 429:
                self._throttled += 1

    # ------------------------------------------------------------------ OAuth
    def handle_token(self, headers, raw: bytes, caller_gone: Callable[[], bool]) -> tuple[int, dict | None]:
        """`POST /token`: (status, body); (0, None) when the caller hung up in the injected latency (nothing issued)."""
        delay = self.faults.latency_seconds("POST", "/token")
        if delay:
            self._stopping.wait(delay)
            if caller_gone():
                self.oauth.count("abandoned")
                return 0, None
        try:
            return 200, self.oauth.token(headers, raw)
        except TokenError as exc:
            return exc.status, exc.body

    # ------------------------------------------------------------------ API
    def credential(self, headers) -> str | None:
        """A short non-secret label for whoever is calling ("api-key", "oauth:<client_id>"), or None."""
        key = headers.get("X-Keap-API-Key")
        if key is not None:
            return "api-key" if key == self.api_key else None
        authorization = headers.get("Authorization", "")
        if authorization[:7].lower() == "bearer ":
            return self.oauth.credential_for(authorization[7:].strip())
        return None

    def handle_api(self, method: str, path: str, query: dict, headers, raw: bytes, exchange: dict) -> tuple:
        """Returns (status, body, headers, stall) where stall is None or seconds before dropping the answer."""
        match = self.spec.match(path)
        if match is None:
            raise _Reply(404, error_body(404, f"No Keap endpoint at {path}"))
        template, params = match
        exchange["template"] = template
        if method not in self.spec.methods(template):
            raise _Reply(405, error_body(405, f"{method} is not allowed on {template}"))
        credential = self.credential(headers)
        if credential is None:
            raise _Reply(401, error_body(401, "Invalid or missing credentials: send X-Keap-API-Key: <key> "
                                              "or Authorization: Bearer <access token>"),
                         self.limiter.headers_for(None))
        verdict = self.limiter.check(credential, force_reject=self.faults.take_burst_429(method, template))
        if not verdict.allowed:
            raise _Reply(429, dict(THROTTLED_BODY), verdict.headers)
        limit_headers = verdict.headers
        delay = self.faults.latency_seconds(method, template)
        if delay:
            self._stopping.wait(delay)
        fault = self.faults.error_status(method, template)
        if fault:
            exchange["injected"] = True  # a gateway-style fault, not an answer of Keap's API
            raise _Reply(fault, error_body(fault, _FAULT_MESSAGES[fault]), limit_headers)
        handler = self.routes.get((method, template))
        if handler is None:
            raise _Reply(501, error_body(501, f"{method} {template} is not implemented by the sandbox"),
                         limit_headers)
        try:
            body = self._request_json(method, template, raw, exchange)
            late = self.faults.late_commit(method, template)
            if late is not None:
                self._apply_later(late, handler, params, query, body)
                exchange["injected"] = True  # no answer leaves: the status is only the log's
                return 202, None, limit_headers, 0.0
            status, payload = handler(params, query, body)
        except ApiError as exc:
            raise _Reply(exc.status, error_body(exc.status, exc.message), limit_headers) from None
        stall = self.faults.commit_then_timeout(method, template) if status < 300 else None
        return status, payload, limit_headers, stall

    def _apply_later(self, seconds: float, handler, params: dict, query: dict, body) -> None:
        """A late commit: the write is applied `seconds` from now (its answer is dropped now)."""
        def apply() -> None:
            if not self._stopping.wait(seconds):
                try:
                    handler(params, query, body)
                except ApiError as exc:
                    logger.info("late commit refused: %s", exc.message)

        threading.Thread(target=apply, name="late-commit", daemon=True).start()

    def _request_json(self, method: str, template: str, raw: bytes, exchange: dict):
        if self.spec.request_schema_pointer(method, template) is None:
            return None
        if not raw.strip():
            if self.spec.request_body_required(method, template):
                raise ApiError(400, "Request body is required (JSON)")
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"Malformed JSON request body: {exc}") from None
        exchange["request_json"] = body
        violations = self.spec.request_violations(method, template, body)
        if violations:
            raise ApiError(400, violations[0].message)
        return body


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections give their thread back
    server_version = "keap-sandbox"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp=None) -> str:
        # The Date header follows the sandbox's clock, as Keap's follows Keap's: reset times are read against it.
        return super().date_time_string(self.sandbox.clock() if timestamp is None else timestamp)

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        # The default logs full paths; filters may hold emails, so only the status line goes to debug.
        logger.debug("%s %s", self.command, args[1] if len(args) > 1 else "")

    def do_GET(self):
        self._dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, method = split.path, self.command
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith(ADMIN_PREFIX):
            return self._admin(method, path[len(ADMIN_PREFIX):], raw)
        parsed = parse_qs(split.query, keep_blank_values=True)
        query = {k: (v[0] if len(v) == 1 else v) for k, v in parsed.items()}
        exchange = {"method": method, "path": path, "template": None, "query": query, "request_json": None,
                    "status": None, "response_json": None}
        sandbox = self.sandbox
        if method == "POST" and path in ("/token", API_PREFIX + "/token"):
            exchange["template"] = "/token"
            status, body = sandbox.handle_token(self.headers, raw, self._caller_gone)
            if not status:
                self.close_connection = True
                return None
            return self._finish(exchange, status, body, {})
        if method == "GET" and path == AUTHORIZE_PATH:
            return self._authorize(exchange, query)
        if not path.startswith(API_PREFIX + "/"):
            exchange["template"] = "<unknown>"
            return self._finish(exchange, 404, error_body(404, f"No Keap endpoint at {path}"), {})
        try:
            status, body, headers, stall = sandbox.handle_api(method, path[len(API_PREFIX):], query, self.headers,
                                                              raw, exchange)
        except _Reply as reply:
            exchange["template"] = exchange["template"] or "<unknown>"
            return self._finish(exchange, reply.status, reply.body, reply.headers)
        if stall is not None:
            return self._drop(exchange, status, body, stall)
        self._finish(exchange, status, body, headers)

    def _authorize(self, exchange: dict, query: dict) -> None:
        exchange["template"] = AUTHORIZE_PATH
        try:
            location = self.sandbox.oauth.authorize(query)
        except TokenError as exc:
            return self._finish(exchange, exc.status, exc.body, {})
        exchange.update(status=302)
        self._log_exchange(exchange, 302)
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _caller_gone(self) -> bool:
        """The client closed its connection (a killed process): readable, and reading would give end of file."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _finish(self, exchange: dict, status: int, body, headers: dict) -> None:
        exchange.update(status=status, response_json=body)
        self._log_exchange(exchange, status)
        payload = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (its timeout was shorter than the answer): the work is done all the same.
            logger.debug("client gone before the answer to %s %s", exchange["method"], exchange["template"])
            self.close_connection = True

    def _drop(self, exchange: dict, status: int, body, stall: float) -> None:
        """The write is applied; now stall (optionally) and close the socket without an answer."""
        exchange.update(status=status, response_json=body, dropped=True)
        self._log_exchange(exchange, "dropped")
        if stall:
            self.sandbox._stopping.wait(stall)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _log_exchange(self, exchange: dict, status) -> None:
        sandbox = self.sandbox
        sandbox._count(exchange["method"], exchange["template"], status)
        if sandbox.record:
            sandbox.exchanges.append(exchange)

    def _admin(self, method: str, name: str, raw: bytes) -> None:
        status, body = admin_answer(self.sandbox, method, name, raw)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def run(host: str = "127.0.0.1", port: int = 8700, api_key: str = API_KEY, limits: str = "oauth",
        latency_ms: float | list = 0, seed: int | None = None, data: str | None = None,
        token_lifetime: int = 86400, tenant_limits: str = "tenant", readings: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM, printing how to connect."""
    # Handler threads take turns on the GIL; a short switch interval keeps the time a call is counted at (its
    # rate-limit clock) close to its arrival while other threads validate bodies.
    sys.setswitchinterval(0.0005)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sandbox = Sandbox(host=host, port=port, api_key=api_key, limits=limits, latency_ms=latency_ms, seed=seed,
                      data=data, token_lifetime=token_lifetime, tenant_limits=tenant_limits,
                      readings=readings).start()
    client = sandbox.oauth_client
    print(f"Keap sandbox base URL: {sandbox.base_url}  (REST: {sandbox.base_url}/rest/v2/..., "
          f"token: {sandbox.url}/token)", flush=True)
    print(f"API key (X-Keap-API-Key): {api_key}", flush=True)
    print(f"OAuth client_id={client['client_id']} client_secret={client['client_secret']} "
          f"authorization_code={client['authorization_code']} redirect_uri={client['redirect_uri']}", flush=True)
    print(f"OAuth authorize URL: {sandbox.url}{AUTHORIZE_PATH}; token URL: {sandbox.url}/token; access tokens live "
          f"{token_lifetime}s", flush=True)
    print(f"Limits: {limits}" + (f" ({Limits.parse(limits).describe()})" if Limits.parse(limits) else "")
          + f"; account: {tenant_limits}"
          + (f" ({Limits.parse(tenant_limits).describe()})" if Limits.parse(tenant_limits) else ""), flush=True)
    played = sandbox.faults.config.readings
    print("Readings: " + ("; ".join(f"{name} ({READINGS[name]})" for name in played) if played else
                          "the defaults (docs/sandbox.md#faults-and-readings)"), flush=True)
    print(f"Admin: {sandbox.url}{ADMIN_PREFIX}stats | reset | revoke | faults", flush=True)
    try:
        stop.wait()
    finally:
        sandbox.stop()
        print("Keap sandbox stopped", flush=True)
