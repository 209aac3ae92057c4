"""Request encoding (exact cents, None dropped, times), money(), filters and auth reprs."""
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from worker.keap.auth import ApiKeyAuth, BearerAuth
from worker.keap.wire import build_filter, cents, money, to_wire


def test_decimal_goes_on_the_wire_as_exact_cents():
    wire = json.dumps(to_wire({"a": Decimal("19.90"), "b": Decimal("0.10"), "c": Decimal("20.00"),
                               "d": Decimal("-0.00"), "e": Decimal("9999999999999.99"), "f": Decimal("1E+2")}))
    assert wire == '{"a": 19.9, "b": 0.1, "c": 20.0, "d": 0.0, "e": 9999999999999.99, "f": 100.0}'


def test_every_cent_value_round_trips_exactly():
    for c in range(0, 100_000, 7):
        amount = Decimal(c).scaleb(-2) + Decimal("123456789.00")
        assert Decimal(json.dumps(to_wire(amount))) == amount


@pytest.mark.parametrize("bad", [Decimal("19.899"), Decimal("0.001"), Decimal("NaN"), Decimal("Infinity"),
                                 Decimal("1E+13")])
def test_decimals_keap_cannot_store_exactly_are_refused(bad):
    with pytest.raises(ValueError):
        to_wire({"payment_amount": bad})


def test_trailing_zero_decimals_are_fine():
    assert to_wire(Decimal("19.900")) == 19.9


def test_none_values_are_dropped_at_every_level():
    body = {"a": None, "b": {"c": None, "d": 1}, "e": [{"f": None, "g": "x"}], "h": False, "i": ""}
    assert to_wire(body) == {"b": {"d": 1}, "e": [{"g": "x"}], "h": False, "i": ""}


def test_times_are_iso_8601_utc():
    cet = timezone(timedelta(hours=1))
    assert to_wire(datetime(2024, 5, 21, 23, 0, tzinfo=cet)) == "2024-05-21T22:00:00Z"
    assert to_wire(datetime(2024, 5, 21, 23, 0, 0, 250000, tzinfo=timezone.utc)) == "2024-05-21T23:00:00.250Z"
    assert to_wire(date(2024, 5, 21)) == "2024-05-21"
    with pytest.raises(ValueError, match="time zone"):
        to_wire(datetime(2024, 5, 21, 23, 0))


def test_money_reads_currency_values_exactly():
    assert money({"amount": 1990, "currency_code": "USD", "formatted_amount": "$19.90"}) == Decimal("19.90")
    assert str(money({"amount": 1990})) == "19.90"
    assert money({"amount": "-5"}) == Decimal("-0.05")
    assert money({"amount": 500, "currency_code": "JPY"}) == Decimal("500")
    assert money({"amount": 1234, "currency_code": "kwd"}) == Decimal("1.234")
    for bad in (None, {}, {"amount": 1.5}, {"amount": "1.5"}, {"amount": True}):
        with pytest.raises(ValueError):
            money(bad)


def test_cents():
    assert cents(Decimal("12.50")) == 1250 and cents(Decimal("0")) == 0
    with pytest.raises(ValueError):
        cents(Decimal("1.005"))


def test_filter_is_field_eq_value_joined_by_semicolon():
    assert build_filter({"contact_id": 5, "paid": True, "title": None}) == "contact_id==5;paid==true"
    assert build_filter({"email": "a+b@example.com"}) == "email==a+b@example.com"
    assert build_filter({}) is None


@pytest.mark.parametrize("clauses, why", [
    ({"_ExtId0": "a;b"}, "cannot escape"), ({"_ExtId0": "abc=="}, "cannot escape"),
    ({"sku": "TSHIRT*"}, "wildcard"), ({"sku": " "}, "empty"), ({"sku; x": "1"}, "field name"),
])
def test_filter_refuses_values_that_would_change_its_meaning(clauses, why):
    with pytest.raises(ValueError, match=why) as info:
        build_filter(clauses)
    assert "example" not in str(info.value)


def test_filter_is_url_encoded_by_requests():
    prepared = requests.Request("GET", "http://127.0.0.1/x",
                                params={"filter": build_filter({"email": "a+b@x.io", "paid": False})}).prepare()
    assert prepared.url == "http://127.0.0.1/x?filter=email%3D%3Da%2Bb%40x.io%3Bpaid%3D%3Dfalse"


def test_auth_reprs_hide_secrets():
    key = ApiKeyAuth("KeapAK-very-secret")
    bearer = BearerAuth(lambda: "token-very-secret")
    for auth in (key, bearer):
        assert "secret" not in repr(auth) and "secret" not in str(auth)
    assert key(requests.Request("GET", "http://h/").prepare()).headers["X-Keap-API-Key"] == "KeapAK-very-secret"
    assert bearer(requests.Request("GET", "http://h/").prepare()).headers["Authorization"] == "Bearer token-very-secret"
    with pytest.raises(ValueError):
        ApiKeyAuth(" ")
