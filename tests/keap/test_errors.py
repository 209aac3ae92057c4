"""error_from_response / error_from_exception: every status to its class, messages without secrets."""
from datetime import datetime, timedelta, timezone

import pytest
import requests
from urllib3.exceptions import (
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from worker.keap import errors as e
from worker.keap.quota import RateLimits

V2_ERROR = {"code": 400, "message": "Unrecognized property: price", "status": "Bad Request", "details": []}


@pytest.mark.parametrize("status, cls", [
    (400, e.KeapValidationError), (409, e.KeapValidationError), (422, e.KeapValidationError),
    (401, e.KeapAuthError), (403, e.KeapAuthError), (404, e.KeapNotFound),
    (405, e.KeapPermanentError), (413, e.KeapPermanentError), (408, e.KeapTransientError),
    (500, e.KeapTransientError), (502, e.KeapTransientError), (503, e.KeapTransientError),
    (429, e.KeapRateLimited),
])
def test_status_maps_to_class(status, cls):
    error = e.error_from_response(status, V2_ERROR, None, method="GET", path="/v2/orders")
    assert type(error) is cls
    assert error.status == status and error.body == V2_ERROR


def test_groups_say_what_to_do():
    assert issubclass(e.KeapQuotaExhausted, e.KeapRateLimited)
    assert issubclass(e.KeapRateLimited, e.KeapTransientError)
    assert issubclass(e.KeapOutcomeUnknown, e.KeapTransientError)
    for cls in (e.KeapAuthError, e.KeapNotFound, e.KeapValidationError):
        assert issubclass(cls, e.KeapPermanentError)
    assert not issubclass(e.KeapPermanentError, e.KeapTransientError)


def test_5xx_on_a_write_is_outcome_unknown():
    error = e.error_from_response(502, "<html>Bad Gateway</html>", None, method="POST", path="/v2/orders")
    assert isinstance(error, e.KeapOutcomeUnknown)
    assert "reconcile" in error.message and "Bad Gateway" in error.message
    assert type(e.error_from_response(502, None, None, method="GET", path="/v2/orders")) is e.KeapTransientError


def test_validation_message_keeps_keap_words_and_where():
    error = e.error_from_response(400, V2_ERROR, None, method="POST", path="/v2/orders/{order_id}/items")
    assert error.message == ("Keap rejected the request (HTTP 400, POST /v2/orders/{order_id}/items): "
                             "Bad Request: Unrecognized property: price")
    assert str(error) == error.message


def test_429_throttle_uses_the_headers():
    spike = e.error_from_response(429, {"code": "429", "message": "Quota Exceeded", "status": "Request Throttled"},
                                  RateLimits(throttle_available=5, quota_available=100), method="GET", path="/x")
    assert type(spike) is e.KeapRateLimited and spike.retry_after == 1.0
    assert "Request Throttled: Quota Exceeded" in spike.message
    minute = e.error_from_response(429, None, RateLimits(throttle_available=0, throttle_window_seconds=60,
                                                         quota_available=100))
    assert minute.retry_after == 60.0
    told = e.error_from_response(429, None, RateLimits(throttle_available=0, retry_after_seconds=3.0))
    assert told.retry_after == 3.0
    assert e.error_from_response(429, None, None).retry_after == 1.0


def test_429_with_daily_quota_used_up_is_quota_exhausted():
    resets = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=5)
    error = e.error_from_response(429, None, RateLimits(quota_available=0, quota_resets_at=resets),
                                  method="POST", path="/v2/orders")
    assert type(error) is e.KeapQuotaExhausted
    assert error.resets_at == resets
    assert 5 * 3600 - 5 < error.retry_after <= 5 * 3600
    assert f"{resets:%Y-%m-%d %H:%M} UTC" in error.message


def test_quota_exhausted_without_expiry_header_resets_at_next_utc_midnight():
    error = e.error_from_response(429, None, RateLimits(quota_available=0))
    now = datetime.now(timezone.utc)
    assert error.resets_at.time() == datetime.min.time() and now < error.resets_at <= now + timedelta(days=1)


@pytest.mark.parametrize("body, said", [
    ({"fault": {"faultstring": "Rate limit quota violation", "detail": {}}}, "Rate limit quota violation"),
    ({"error": "invalid_grant", "error_description": "Invalid refresh token"}, "invalid_grant: Invalid refresh token"),
    ("  <h1>Service\n Unavailable</h1> ", "<h1>Service Unavailable</h1>"),
    (b"oops", "oops"),
    (None, ""),
    ("x" * 1000, "x" * 299 + "…"),
])
def test_keap_message_shapes(body, said):
    assert e.keap_message(body) == said


URL = "https://api.infusionsoft.com/crm/rest/v2/contacts?filter=email%3D%3Djane%40example.com"


def _conn_refused():
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, URL, reason))


@pytest.mark.parametrize("exc, method, cls", [
    (_conn_refused(), "POST", e.KeapTransientError),
    (requests.exceptions.ConnectTimeout("connect timed out " + URL), "POST", e.KeapTransientError),
    (requests.exceptions.ReadTimeout(ReadTimeoutError(None, URL, "Read timed out.")), "POST", e.KeapOutcomeUnknown),
    (requests.exceptions.ReadTimeout(ReadTimeoutError(None, URL, "Read timed out.")), "GET", e.KeapTransientError),
    (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104))), "PATCH",
     e.KeapOutcomeUnknown),
    (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104))), "GET",
     e.KeapTransientError),
    (requests.exceptions.MissingSchema("no schema " + URL), "GET", e.KeapPermanentError),
])
def test_exception_mapping_never_echoes_the_url(exc, method, cls):
    error = e.error_from_exception(exc, method, "/v2/contacts")
    assert type(error) is cls
    assert "example.com" not in error.message and "jane" not in error.message
    assert error.message.startswith(("could not connect", "no answer", "cannot send"))
    assert f"{method} /v2/contacts" in error.message
