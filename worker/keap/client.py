"""KeapClient: Keap REST v2 over a requests.Session, one HTTP call per method; no sleeping, no retries but connects."""
from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from worker.keap import sending
from worker.keap.contacts import Contacts
from worker.keap.errors import (
    WRITE_METHODS,
    KeapOutcomeUnknown,
    KeapPermanentError,
    KeapTransientError,
    error_from_exception,
    error_from_response,
)
from worker.keap.orders import Orders
from worker.keap.products import Products
from worker.keap.quota import RateLimits
from worker.keap.subscriptions import Subscriptions
from worker.keap.transactions import Transactions
from worker.keap.wire import to_wire

log = logging.getLogger(__name__)

OnResponse = Callable[[str, str, int, "RateLimits | None"], None]


class KeapClient:
    """Sends calls, maps failures to KeapError (see errors.py); `contacts`, `products`, ... name the calls."""

    def __init__(self, base_url: str, auth: requests.auth.AuthBase, session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = (5.0, 30.0), on_response: OnResponse | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.session = session or requests.Session()
        self.timeout = timeout
        self.on_response = on_response
        self.last_limits: RateLimits | None = None
        self.calls = 0
        self.page_size = 1000  # per page of list calls (Keap's maximum); lower it to exercise paging in tests
        self._mount_connect_retry()
        self.contacts = Contacts(self)
        self.products = Products(self)
        self.orders = Orders(self)
        self.subscriptions = Subscriptions(self)
        self.transactions = Transactions(self)

    def __repr__(self) -> str:
        return f"KeapClient({self.base_url!r}, auth={self.auth!r})"

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                path_params: Mapping[str, Any] | None = None, with_status: bool = False) -> Any:
        """Send one call; `path` is relative to /rest (e.g. "/v2/orders/{order_id}", filled from path_params).

        Returns the parsed JSON (None for an empty answer), or (HTTP status, JSON) `with_status`; raises a
        KeapError for anything but a 2xx.
        """
        method = method.upper()
        url = self.base_url + "/rest" + path.format(
            **{name: quote(str(value), safe="") for name, value in (path_params or {}).items()})
        headers = {"Accept": "application/json"}
        data = None
        if json is not None:
            data = jsonlib.dumps(to_wire(json), separators=(",", ":"), allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        query = {name: value for name, value in (params or {}).items() if value is not None}
        response = self._send(method, path, url, query, data, headers)
        if response.status_code == 401 and self._renewed(response):
            # A 401 means Keap did not act on the request, so sending it again (even a write) is safe.
            log.info("keap %s %s -> 401; sending it once more with a refreshed OAuth token", method, path)
            response = self._send(method, path, url, query, data, headers)
        limits = RateLimits.from_headers(response.headers)
        self.last_limits = limits
        log.debug("keap %s %s -> %s", method, path, response.status_code)
        sending.answered(method, response.status_code)
        if self.on_response is not None:
            self.on_response(method, path, response.status_code, limits)
        body, parsed = _parse(response)
        if not 200 <= response.status_code < 300:
            error = error_from_response(response.status_code, body, limits, method=method, path=path)
            refused = getattr(self.auth, "refused", None)
            if response.status_code in (401, 403) and refused is not None:
                raise refused(error)  # the credential's kind says what the orders wait for and the fix
            raise error
        if not parsed:
            error = KeapOutcomeUnknown if method in WRITE_METHODS else KeapTransientError
            raise error(f"Keap answered {method} {path} with HTTP {response.status_code} and a body that is not "
                        "JSON", status=response.status_code, limits=limits, body=body)
        return (response.status_code, body) if with_status else body

    def _send(self, method: str, path: str, url: str, query: dict, data: bytes | None,
              headers: dict) -> requests.Response:
        self.calls += 1
        try:
            return self.session.request(method, url, params=query, data=data, headers=headers, auth=self.auth,
                                        timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            log.debug("keap %s %s failed: %s", method, path, type(exc).__name__)
            # from None: the requests exception text holds the URL, whose query may carry an email.
            raise error_from_exception(exc, method, path) from None

    def fenced(self, fence: Callable[[], None]) -> AbstractContextManager[list[str]]:
        """Within the block, `fence()` runs right before each request's bytes leave (after its send slot, on a
        connected socket); it raises to keep the request from being sent (nothing was sent then). Yields the
        methods of the block's writes Keap answered 2xx."""
        return sending.fenced(fence)

    def _renewed(self, response: requests.Response) -> bool:
        renew = getattr(self.auth, "renew", None)
        return bool(renew is not None and renew(response.request))

    def list_page(self, path: str, items_key: str, *, path_params: Mapping[str, Any] | None = None,
                  filter: str | None = None, page_size: int | None = None, page_token: str | None = None,
                  order_by: str | None = None) -> tuple[list, str | None]:
        """One page of a v2 list: (items, next_page_token or None)."""
        params = {"filter": filter, "page_size": page_size or self.page_size, "page_token": page_token,
                  "order_by": order_by}
        body = self.request("GET", path, params=params, path_params=path_params) or {}
        return list(body.get(items_key) or []), body.get("next_page_token") or None

    def iter_items(self, path: str, items_key: str, **page_args: Any) -> Iterator[dict]:
        """Every item of a v2 list, page after page."""
        token, seen = None, set()
        while True:
            items, token = self.list_page(path, items_key, page_token=token, **page_args)
            yield from items
            if not token or not items:
                return
            if token in seen:
                raise KeapPermanentError(f"Keap repeated a page token for GET {path}; stopped to avoid a loop")
            seen.add(token)

    def _mount_connect_retry(self) -> None:
        # Only connect errors are retried: then nothing was sent. No read/status retries, no backoff sleep.
        parts = urlsplit(self.base_url)
        prefix = f"{parts.scheme}://{parts.netloc}/"
        if prefix not in self.session.adapters:
            retry = Retry(total=None, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0,
                          raise_on_status=False)
            self.session.mount(prefix, HTTPAdapter(max_retries=retry))
        sending.hook(self.session.adapters[prefix])  # whatever the session: a fence always runs before a send


def _parse(response: requests.Response) -> tuple[Any, bool]:
    """(body, is_json): JSON when it parses, else the text; an empty body is (None, True)."""
    if not response.content:
        return None, True
    try:
        return response.json(), True
    except ValueError:
        return response.text, False
