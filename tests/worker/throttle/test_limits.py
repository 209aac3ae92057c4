"""The limits model without Redis: profiles and custom limits, and what an answer's headers or a 429 tell each
scope."""
from __future__ import annotations

import pytest

from worker.keap.quota import RateLimits
from worker.throttle import Scope, Window, parse_limits
from worker.throttle.limits import keap_figures, pauses


def test_profiles_and_custom_limits_parse():
    assert parse_limits("sak") == [Window(5, 1), Window(240, 60), Window(30000, 86400)]
    assert parse_limits("oauth")[1] == Window(1500, 60)
    assert parse_limits("off") == []
    assert parse_limits("20/s, 600/min,5000/day") == [Window(20, 1), Window(600, 60), Window(5000, 86400)]


def test_bad_limit_names_the_part_and_the_format():
    with pytest.raises(ValueError, match=r"'20/hour'.*N/s, N/min or N/day"):
        parse_limits("5/s,20/hour")


def test_a_credential_reads_the_product_headers_and_an_account_the_tenant_headers():
    windows = tuple(parse_limits("10/s,600/min,1000/day"))
    said = RateLimits(throttle_limit=600, throttle_available=590, throttle_window_seconds=60, quota_used=100,
                      quota_limit=1000, tenant_throttle_used=7, tenant_throttle_limit=10000,
                      tenant_throttle_window_seconds=60)
    assert keap_figures(Scope("credential", "c", windows), said, 20.0) == [10, 600, 60020.0, 100, 1000, ""]
    assert keap_figures(Scope("account", "a", windows), said, 20.0) == [7, 10000, 60020.0, "", "", ""]
    # A window Keap describes as other than the one we log may not correct our log; the day still counts.
    other = RateLimits(throttle_used=3, throttle_limit=5, throttle_window_seconds=1, quota_used=100)
    assert keap_figures(Scope("credential", "c", windows), other, 20.0) == ["", "", "", 100, "", ""]


def test_a_429_pauses_the_credential_unless_keap_counted_a_minute_we_log():
    scopes = [Scope("credential", "c", tuple(parse_limits("10/s,600/min"))), Scope("account", "a", ())]
    assert pauses(scopes, None, 200) == ({}, False)
    assert pauses(scopes, None, 429) == ({"credential": (1.0, "grows")}, False)  # a spike arrest, untimed
    assert pauses(scopes, RateLimits(retry_after_seconds=3), 429) == ({"credential": (3, None)}, False)
    minute = RateLimits(throttle_limit=600, throttle_available=0, throttle_window_seconds=60)
    assert pauses(scopes, minute, 429) == ({}, False)  # Keap's count fills our log instead
