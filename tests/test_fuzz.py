"""Fuzzing (Hypothesis) of the readers and the validator: no input raises, every record is accounted for as an
order or a reported row (and counted alike by the progress pass), and the published schema agrees with the
validator on every value it can express."""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.sources import FORMATS, count_orders, detect_format, read_file
from producers.sources.base import FileRejected, ReadOptions
from worker.contract import OrderInvalid, order_json_schema, parse_order

FIXTURES = Path(__file__).parent / "sources" / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEEDS = [path.read_bytes() for path in sorted(FIXTURES.iterdir())] + [
    (EXAMPLES / "orders.jsonl").read_bytes()[:6000], (EXAMPLES / "orders.csv").read_bytes()[:6000]]
OPTIONS = ReadOptions(today=date(2026, 11, 26), store_timezone="UTC", max_record_chars=4000, max_field_chars=500,
                      missing_email_placeholder="x-{external_id}@example.com")
# FUZZ_EXAMPLES=5000 for a longer hunt than the suite's.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SCHEMA = json.loads(json.dumps(order_json_schema()), parse_float=Decimal)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def check_file(content: bytes, fmt: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.txt"
        path.write_bytes(content)
        name = detect_format(path, fmt, OPTIONS)
        try:
            rows = list(read_file(path, name, OPTIONS))
        except FileRejected as exc:  # the whole file refused, before any row: says what and how to fix it
            assert exc.message and exc.hint and len(str(exc)) < 2000
            return
        assert count_orders(path, name, OPTIONS) == len(rows)
        for row in rows:
            assert (row.order is None) != (row.error is None)
            assert row.line >= 1 or row.order is None
            str(row.error)  # an error always renders


@st.composite
def mutated(draw) -> bytes:
    """A real export with bytes replaced, inserted or cut: the shapes a damaged file has."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "cut"]))
        chunk = draw(st.one_of(st.binary(min_size=1, max_size=6),
                               st.sampled_from([b'"', b",", b";", b"\n", b"\r", b"[", b"{", b"}", b"\\", b"\xff",
                                                b"\xe9", b"\x00", b"#", b"1e3", b"-", b"'"])))
        if kind == "replace":
            data[at:at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = chunk
        else:
            del data[at:at + draw(st.integers(1, 200))]
    return bytes(data)


@FUZZ
@given(content=mutated(), fmt=st.sampled_from([None, *FORMATS]))
def test_damaged_exports_never_raise_and_every_record_is_accounted_for(content, fmt):
    check_file(content, fmt)


@FUZZ
@given(content=st.binary(max_size=400), fmt=st.sampled_from([None, *FORMATS]))
def test_random_bytes_never_raise(content, fmt):
    check_file(content, fmt)


# --- the validator ----------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) | st.text(max_size=30)
    | st.decimals(allow_nan=False, places=None),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
BASE = {"external_id": "f-1", "order_time": "2024-01-02T03:04:05Z",
        "customer": {"email": "x@example.com", "billing_address": {"region": "TX", "country_code": "USA"}},
        "items": [{"sku": "X", "unit_price": "1.00", "quantity": 2}],
        "payments": [{"amount": "1.00", "method": "Cash"}]}
PATHS = [("external_id",), ("order_time",), ("customer", "email"), ("customer", "billing_address", "region"),
         ("customer", "billing_address", "country_code"), ("items", 0, "unit_price"), ("items", 0, "quantity"),
         ("items", 0, "type"), ("payments", 0, "amount"), ("custom_fields",), ("notes",), ("customer", "phone")]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), max_size=4))
def test_the_validator_never_raises_anything_but_order_invalid(changes):
    data = json.loads(json.dumps(BASE))
    for path, value in changes:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    try:
        order = parse_order(data, today=date(2026, 11, 26))
    except OrderInvalid as exc:
        assert exc.errors and str(exc)
    else:
        dumped = json.loads(json.dumps(order.model_dump(mode="json")), parse_float=Decimal)
        assert not list(VALIDATOR.iter_errors(dumped))  # what the validator keeps, the schema accepts
        assert parse_order(dumped, today=date(2026, 11, 26)) == order


def agrees(field: tuple, value) -> None:
    data = json.loads(json.dumps(BASE))
    data["payments"] = []
    target = data
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    schema_ok = not list(VALIDATOR.iter_errors(data))
    try:
        parse_order(data, today=date(2026, 11, 26))
        model_ok = True
    except OrderInvalid:
        model_ok = False
    assert schema_ok == model_ok, (value, schema_ok, model_ok)


AMOUNT_TEXT = st.text(alphabet=st.sampled_from(list("0123456789.-+eE_, ") + ["\u0663", "\u0665", "\uff11"]),
                      max_size=14)


@FUZZ
@given(value=AMOUNT_TEXT | st.integers(-10**12, 10**12) | st.decimals(allow_nan=False, allow_infinity=False,
                                                                       places=None, min_value=-10**10, max_value=10**10))
def test_schema_and_validator_agree_on_amounts(value):
    agrees(("items", 0, "unit_price"), value)


EMAIL_TEXT = st.lists(st.sampled_from(list("ab.@-_+;=*,\" '!#$%&/?^`{|}~") + ["\u00e9", "com", "example"]),
                      max_size=14).map("".join)


@FUZZ
@given(value=EMAIL_TEXT | st.emails())
def test_schema_and_validator_agree_on_emails(value):
    agrees(("customer", "email"), value)


@FUZZ
@given(value=st.text(alphabet=st.sampled_from(list("0123456789-T:Zz +.")), max_size=26))
def test_schema_accepts_every_order_time_the_validator_accepts(value):
    data = json.loads(json.dumps(BASE)) | {"order_time": value}
    try:
        parse_order(data, today=date(2026, 11, 26))
    except OrderInvalid:
        return  # the schema's pattern cannot check calendars (2024-02-31): it may accept what the validator refuses
    assert not list(VALIDATOR.iter_errors(data))


def test_the_issue_examples_are_refused_by_both():
    for value in ["1e3", "1E+3", "1_000", "\u0663\u0660\u0660\u0665", "-19.90", "3,005"]:
        agrees(("items", 0, "unit_price"), value)
        assert not re.fullmatch(SCHEMA["$defs"]["Item"]["properties"]["unit_price"]["anyOf"][0]["pattern"], value)
