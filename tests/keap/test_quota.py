"""RateLimits.from_headers: Keap's x-keap-* headers, tolerant of missing and garbled values."""
from datetime import datetime, timezone

from worker.keap.quota import RateLimits

FULL = {
    "x-keap-product-throttle-limit": "240",
    "x-keap-product-throttle-time-unit": "minute",
    "x-keap-product-throttle-interval": "1",
    "x-keap-product-throttle-available": "239",
    "x-keap-product-throttle-used": "1",
    "x-keap-product-quota-limit": "30000",
    "x-keap-product-quota-time-unit": "day",
    "x-keap-product-quota-interval": "1",
    "x-keap-product-quota-available": "29990",
    "x-keap-product-quota-used": "10",
    "x-keap-product-quota-expiry-time": "1771459200000",
    "x-keap-product-spike-limit": "5ps",
    "x-keap-tenant-id": "ab103.infusionsoft.com",
    "x-keap-tenant-throttle-limit": "10000",
    "x-keap-tenant-throttle-time-unit": "minute",
    "x-keap-tenant-throttle-interval": "1",
    "x-keap-tenant-throttle-available": "9999",
    "x-keap-tenant-throttle-used": "1",
}


def test_every_header_parsed():
    limits = RateLimits.from_headers(FULL)
    assert limits == RateLimits(
        throttle_limit=240, throttle_available=239, throttle_used=1, throttle_window_seconds=60,
        quota_limit=30000, quota_available=29990, quota_used=10, quota_window_seconds=86400,
        quota_resets_at=datetime(2026, 2, 19, 0, 0, tzinfo=timezone.utc), spike_limit=5.0,
        tenant_id="ab103.infusionsoft.com", tenant_throttle_limit=10000, tenant_throttle_available=9999,
        tenant_throttle_used=1, tenant_throttle_window_seconds=60,
    )
    assert not limits.quota_exhausted and not limits.throttle_exhausted


def test_no_keap_headers_is_none():
    assert RateLimits.from_headers({"Content-Type": "application/json"}) is None
    assert RateLimits.from_headers({}) is None


def test_header_names_are_case_insensitive():
    limits = RateLimits.from_headers({"X-Keap-Product-Quota-Available": "0"})
    assert limits.quota_available == 0 and limits.quota_exhausted
    assert limits.throttle_limit is None


def test_garbled_values_become_none():
    limits = RateLimits.from_headers({
        "x-keap-product-throttle-limit": "lots",
        "x-keap-product-throttle-time-unit": "fortnight",
        "x-keap-product-quota-expiry-time": "soon",
        "x-keap-product-spike-limit": "fast",
        "x-keap-product-quota-available": "",
    })
    assert (limits.throttle_limit, limits.throttle_window_seconds, limits.quota_resets_at, limits.spike_limit,
            limits.quota_available) == (None, None, None, None, None)


def test_units_intervals_and_epochs():
    limits = RateLimits.from_headers({
        "x-keap-product-throttle-time-unit": "Seconds", "x-keap-product-throttle-interval": "10",
        "x-keap-product-quota-time-unit": "hour", "x-keap-product-quota-interval": "0",
        "x-keap-product-quota-expiry-time": "1771459200",  # seconds, not ms
        "x-keap-product-spike-limit": "300pm",
    })
    assert limits.throttle_window_seconds == 10
    assert limits.quota_window_seconds == 3600  # an interval of 0 makes no sense: one unit
    assert limits.quota_resets_at == datetime(2026, 2, 19, tzinfo=timezone.utc)
    assert limits.spike_limit == 5.0


def test_retry_after_seconds_and_http_date():
    assert RateLimits.from_headers({"Retry-After": "7"}).retry_after_seconds == 7.0
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
    limits = RateLimits.from_headers({"retry-after": "Thu, 26 Nov 2026 12:00:30 GMT"}, now=now)
    assert limits.retry_after_seconds == 30.0
    assert RateLimits.from_headers({"retry-after": "whenever"}).retry_after_seconds is None
