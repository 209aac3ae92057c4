"""`keap-orders auth`: authorise the Keap app (OAuth2 authorization code), then show, refresh or forget its tokens.

The code comes back on the redirect URI: pasted by the operator (the whole address, so `state` is checked, or the bare
code), or caught by a one-shot local server when the redirect URI is a loopback address (`--listen`).
"""
from __future__ import annotations

import html
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from admin.console import when
from worker.keap.tokens import OAuthTokens, TokenPair
from worker.ledger import Ledger
from worker.settings import Settings

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LoginError(Exception):
    """The authorisation did not complete; the message says why and what to do."""


def new_state() -> str:
    return secrets.token_urlsafe(16)


def authorize_url(settings: Settings, state: str) -> str:
    query = urlencode({"client_id": settings.keap_client_id, "redirect_uri": settings.keap_redirect_uri,
                       "response_type": "code", "scope": "full", "state": state})
    return f"{settings.keap_authorize_url}?{query}"


def code_from(pasted: str, state: str) -> tuple[str, bool]:
    """(code, state checked) from what the operator pasted: the address the browser landed on, or the bare code."""
    text = pasted.strip()
    if not text:
        raise LoginError("nothing was pasted; run `keap-orders auth login` again")
    if "?" in text or "code=" in text or "error=" in text:
        query = urlsplit(text).query if "?" in text else text
        return code_from_query({k: v[0] for k, v in parse_qs(query).items()}, state), True
    return text, False


def code_from_query(query: dict[str, str], state: str) -> str:
    if query.get("error"):
        said = ": ".join(query[k] for k in ("error", "error_description") if query.get(k))
        raise LoginError(f"Keap did not authorise the app ({said}); run `keap-orders auth login` again")
    if not secrets.compare_digest(query.get("state", ""), state):
        raise LoginError("the address does not belong to this login (its state differs: an old or foreign link); "
                         "run `keap-orders auth login` again and use the address it prints")
    if not query.get("code"):
        raise LoginError("the address carries no code; paste the whole address the browser was sent to")
    return query["code"]


class RedirectCatcher:
    """A one-shot HTTP server on the redirect URI (loopback only) that waits for Keap's redirect with the code."""

    def __init__(self, redirect_uri: str, state: str) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK:
            raise LoginError(f"--listen needs KEAP_REDIRECT_URI on a loopback address (e.g. http://127.0.0.1:8765/"
                             f"callback, registered for the app); it is {redirect_uri or 'not set'}: paste the "
                             "address instead")
        self.path, self.state = parts.path or "/", state
        self.result: str | LoginError | None = None
        self._done = threading.Event()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                split = urlsplit(self.path)
                if split.path != catcher.path:
                    return self._answer(404, "Not the redirect address.")
                try:
                    catcher.result = code_from_query({k: v[0] for k, v in parse_qs(split.query).items()},
                                                     catcher.state)
                    self._answer(200, "keap-orders is authorised. You can close this window.")
                except LoginError as exc:
                    catcher.result = exc
                    self._answer(400, str(exc))
                catcher._done.set()

            def _answer(self, status: int, text: str) -> None:
                body = f"<!doctype html><title>keap-orders</title><p>{html.escape(text)}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # the query holds the code: log nothing
                pass

        host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        try:
            self._server = HTTPServer((host, parts.port or 80), Handler)
        except OSError as exc:
            raise LoginError(f"cannot listen on {host}:{parts.port or 80} ({exc.strerror}); free the port or paste "
                             "the address instead") from None

    def wait(self, timeout: float) -> str:
        """The code, once Keap's redirect arrives (requests to other paths are answered 404 and ignored)."""
        self._server.timeout = 0.5
        deadline = time.monotonic() + timeout
        try:
            while not self._done.is_set():
                if time.monotonic() >= deadline:
                    raise LoginError(f"no redirect from Keap within {timeout:.0f}s; run `keap-orders auth login` again")
                self._server.handle_request()
        finally:
            self._server.server_close()
        if isinstance(self.result, LoginError):
            raise self.result
        return self.result


def complete(tokens: OAuthTokens, ledger: Ledger, code: str, redirect_uri: str) -> tuple[TokenPair, int]:
    """Exchange the code, store the new pair (lifting a pause) and release the orders held for it."""
    pair = tokens.authorize(code, redirect_uri)
    return pair, ledger.release_held("reauth")


def status_lines(shown: dict[str, Any], waiting: int) -> list[str]:
    """`auth status`: when things expire and happened, the pause, the orders waiting; never a token."""
    now = shown["now"]
    lines = [f"OAuth app (client id): {shown['client_id']}"]
    if not shown["stored"]:
        lines.append("tokens: none stored; run `keap-orders auth login`")
    else:
        lines += [f"access token expires: {when(shown['access_expires_at'], now)}",
                  f"refresh token expires: {when(shown['refresh_expires_at'], now)} (45 days after the last refresh)",
                  f"last refresh: {when(shown['last_refresh'], now)}",
                  f"next refresh: {when(shown['next_refresh'], now)} (the keeper, or the first request after it)",
                  f"authorised: {when(shown['authorized_at'], now)}"]
    paused = shown["paused"]
    lines.append(f"paused: since {when(paused['since'], now)}: Keap refused the grant ({paused['reason']}); run "
                 "`keap-orders auth login`" if paused else "paused: no")
    lines.append(f"orders waiting for re-authorisation: {waiting}")
    return lines
