"""The order message contract: every rule, error texts without PII, JSON round trip and JSON Schema."""
from __future__ import annotations

import json
import pickle
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import jsonschema
import pytest

from worker.contract import FieldError, Order, OrderInvalid, order_json_schema, parse_order

TODAY = date(2026, 11, 26)
EXAMPLE_JSON = """{
  "external_id": "shop-1001",
  "order_time": "2024-03-05T14:22:10Z",
  "title": "Order #1001",
  "order_type": "ONLINE",
  "customer": {
    "email": "ana.lima@example.com", "given_name": "Ana", "family_name": "Lima",
    "phone": "+1 512 555 0100", "company": "Lima Designs",
    "billing_address": {"line1": "12 Oak St", "line2": "Apt 4", "locality": "Austin",
                        "region": "TX", "postal_code": "78701", "country_code": "USA"},
    "shipping_address": {"first_name": "Ana", "last_name": "Lima", "line1": "500 Main St",
                         "locality": "Dallas", "region": "TX", "postal_code": "75201", "country_code": "USA"}
  },
  "items": [
    {"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90", "unit_cost": "7.10", "name": "T-shirt (M)"},
    {"type": "SHIPPING", "name": "UPS Ground", "quantity": 1, "unit_price": "5.00"},
    {"type": "TAX", "name": "TX sales tax", "quantity": 1, "unit_price": "3.70"}
  ],
  "payments": [
    {"amount": "48.50", "method": "Credit Card (Manual)", "paid_at": "2024-03-05T14:22:30Z",
     "external_id": "ch_3Pq", "notes": "Stripe charge ch_3Pq"}
  ],
  "custom_fields": {"Sales Channel": "Shopify", "Fulfillment": "UPS"},
  "subscriptions": [
    {"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY", "billing_amount": "25.00",
     "start_date": "2026-12-15", "quantity": 1, "auto_charge": false}
  ],
  "promo_codes": [],
  "notes": "Imported from Shopify"
}"""
PII = ["ana.lima@example.com", "Ana", "Lima", "+1 512 555 0100", "12 Oak St", "500 Main St", "78701", "Austin"]


def example() -> dict:
    return json.loads(EXAMPLE_JSON, parse_float=Decimal)


def minimal(**changes) -> dict:
    data = {"external_id": "o-1", "order_time": "2024-01-02T03:04:05Z", "customer": {"email": "x@example.com"},
            "items": [{"sku": "MUG-CLASSIC", "unit_price": "12.50"}]}
    data.update(changes)
    return data


def errors_of(data: dict, today: date = TODAY) -> list[FieldError]:
    with pytest.raises(OrderInvalid) as caught:
        parse_order(data, today=today)
    return caught.value.errors


def only_error(data: dict, today: date = TODAY) -> FieldError:
    errors = errors_of(data, today)
    assert len(errors) == 1, errors
    return errors[0]


# --- the example and defaults --------------------------------------------------------------------------------


def test_example_parses_with_totals_and_keys():
    order = parse_order(example(), today=TODAY)
    assert order.total == Decimal("48.50") and order.payments_total == Decimal("48.50")
    assert order.items[0].unit_price == Decimal("19.90") and order.items[0].type == "PRODUCT"
    assert order.payments[0].key == "ch_3Pq"
    assert order.subscriptions[0].start_date == date(2026, 12, 15)
    assert order.customer.shipping_address.first_name == "Ana"


def test_defaults_title_type_quantity_and_paid_at():
    order = parse_order(minimal(payments=[{"amount": "5", "method": "Cash"}]), today=TODAY)
    assert order.title == "Order o-1" and order.order_type == "ONLINE" and order.items[0].quantity == 1
    assert order.payments[0].paid_at == order.order_time
    assert order.payments[0].key.startswith("c:")


def test_payment_keys_follow_content_not_position():
    cash = {"amount": "1", "method": "Cash", "paid_at": "2024-01-02T05:04:05+02:00"}
    check = {"amount": "1", "method": "Check", "paid_at": "2024-01-02T03:04:05Z"}
    keys = [p.key for p in parse_order(minimal(payments=[cash, check]), today=TODAY).payments]
    swapped = [p.key for p in parse_order(minimal(payments=[check, cash]), today=TODAY).payments]
    assert len(set(keys)) == 2 and keys == swapped[::-1]  # the same payment keeps its key in any position
    same_instant = {**cash, "paid_at": "2024-01-02T03:04:05Z"}  # the same moment in UTC: the same payment
    assert parse_order(minimal(payments=[same_instant]), today=TODAY).payments[0].key == keys[0]
    noted = {**cash, "notes": "second till"}
    assert parse_order(minimal(payments=[noted]), today=TODAY).payments[0].key != keys[0]


def test_identical_payments_are_numbered_and_external_ids_win():
    cash = {"amount": "1", "method": "Cash"}
    twice = [p.key for p in parse_order(minimal(payments=[cash, cash]), today=TODAY).payments]
    assert twice[1] == twice[0] + "#2"
    named = parse_order(minimal(payments=[{**cash, "external_id": "ch_1"}]), today=TODAY).payments[0]
    assert named.key == "ch_1"


# --- money -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [19.9, "19.9", Decimal("19.9"), "19.90", Decimal("19.900")])
def test_money_becomes_exact_decimal_with_cents(raw):
    order = parse_order(minimal(items=[{"sku": "X", "unit_price": raw}]), today=TODAY)
    assert str(order.items[0].unit_price) == "19.90"


def test_money_from_json_float_is_exact():
    data = json.loads(json.dumps(minimal(items=[{"sku": "X", "unit_price": 19.9, "quantity": 3}])), parse_float=Decimal)
    assert parse_order(data, today=TODAY).total == Decimal("59.70")


def test_three_decimals_error_text_names_order_field_value_and_fix():
    with pytest.raises(OrderInvalid) as caught:
        parse_order(minimal(external_id="shop-1001", items=[{"sku": "X", "unit_price": "19.999"}]), today=TODAY)
    assert str(caught.value) == "order shop-1001: items[0].unit_price: at most 2 decimals (got '19.999'); round to cents"
    assert caught.value.external_id == "shop-1001"


@pytest.mark.parametrize("raw, message", [(0.1 + 0.2, "at most 2 decimals"), ("-1.00", "must not be negative"),
                                          ("abc", "not a decimal amount"), (True, "must be a decimal string"),
                                          ("NaN", "not a usable amount"), ("1e12", "written with an exponent"),
                                          ("1E+3", "written with an exponent"), ("1_000", "separators"),
                                          ("3,005", "separators"), ("\u0663\u0660\u0660\u0665", "digits other than 0-9"),
                                          ("19.90 ", "spaces"), ("+5", "not a decimal amount"),
                                          ("1000000000", "not a usable amount"),
                                          pytest.param(10**5000, "not a usable amount", id="5000-digits"),
                                          (Decimal("1E-3"), "at most 2 decimals")])
def test_bad_money(raw, message):
    assert message in only_error(minimal(items=[{"sku": "X", "unit_price": raw}])).message


def test_unit_price_is_required_for_every_item_with_the_reason():
    error = only_error(minimal(items=[{"sku": "X"}]))
    assert error.field == "items[0].unit_price" and error.message == "is required"
    assert "total is exact" in error.hint


def test_unit_cost_optional_but_not_negative():
    assert parse_order(minimal(items=[{"sku": "X", "unit_price": 1, "unit_cost": "0.5"}])).items[0].unit_cost == Decimal("0.50")
    assert only_error(minimal(items=[{"sku": "X", "unit_price": 1, "unit_cost": "-1"}])).field == "items[0].unit_cost"


# --- times ---------------------------------------------------------------------------------------------------------


def test_naive_time_is_rejected_with_the_fix():
    error = only_error(minimal(order_time="2024-03-05T14:22:10"))
    assert (error.field, error.message) == ("order_time", "has no UTC offset (got '2024-03-05T14:22:10')")
    assert "Z" in error.hint


@pytest.mark.parametrize("raw", ["2024-03-05", "yesterday", "2024-13-05T10:00:00Z", 1709648530])
def test_bad_times(raw):
    assert only_error(minimal(order_time=raw)).field == "order_time"


def test_offsets_are_kept_and_python_datetimes_accepted():
    order = parse_order(minimal(order_time="2024-03-05T09:22:10-05:00"), today=TODAY)
    assert order.order_time == datetime(2024, 3, 5, 14, 22, 10, tzinfo=timezone.utc)
    assert order.order_time.utcoffset() == timedelta(hours=-5)
    aware = datetime(2024, 3, 5, tzinfo=timezone.utc)
    assert parse_order(minimal(order_time=aware), today=TODAY).order_time == aware
    assert only_error(minimal(order_time=datetime(2024, 3, 5))).message == "has no UTC offset (got '2024-03-05 00:00:00')"


# --- required fields, ids, enums -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["external_id", "order_time", "customer"])
def test_required_order_fields(field):
    data = minimal()
    del data[field]
    assert only_error(data).field == field


@pytest.mark.parametrize("bad, what", [("a;b", "';'"), ("a=b", "'='"), ("a*", "'*'"), ("a,b", "','"),
                                       ("a b", "whitespace"), ("a\tb", "whitespace")])
def test_external_id_charset(bad, what):
    error = only_error(minimal(external_id=bad))
    assert error.field == "external_id" and f"contains {what}" in error.message and "Keap filter" in error.message


def test_external_id_length_and_int():
    assert only_error(minimal(external_id="x" * 101)).field == "external_id"
    assert only_error(minimal(external_id="")).field == "external_id"
    assert parse_order(minimal(external_id=1001), today=TODAY).external_id == "1001"
    assert parse_order(minimal(external_id="shop/2024:#1001@eu+x_y.z-1"), today=TODAY)


def test_unknown_external_id_in_error_text():
    with pytest.raises(OrderInvalid) as caught:
        parse_order({"order_time": "2024-01-02T03:04:05Z"}, today=TODAY)
    assert caught.value.external_id is None
    assert str(caught.value).startswith("order (unknown external_id): ")


@pytest.mark.parametrize("email, says", [
    ("ana", "exactly one @"), ("ana@", "not a host name"), ("@example.com", "empty part before the @"),
    ("ana@example", "not a host name"), ("a b@example.com", "a space or a quote"), ("", "exactly one @"),
    (5, "must be text"), ("garc\u00eda@example.com", "non-ASCII letter before the @"),
    ("ana@b\u00fccher.example", "non-ASCII letter in the domain"), ("ana;x@example.com", "; = * ,"),
    ("a@b@example.com", "exactly one @"), ("ana..b@example.com", "twice"),
])
def test_a_refused_email_says_what_is_wrong_without_echoing_it(email, says):
    with pytest.raises(OrderInvalid) as caught:
        parse_order(minimal(customer={"email": email}), today=TODAY)
    (error,) = caught.value.errors
    assert error.field == "customer.email" and says in error.message
    assert not (isinstance(email, str) and len(email) > 3 and email in str(caught.value))
    if "non-ASCII" in says:
        assert "ASCII" in error.hint and "; = *" not in error.hint


def test_needs_an_item_or_a_subscription():
    error = only_error(minimal(items=[]))
    assert error.field == "items" and "at least one item or subscription" in error.message
    only_subscription = minimal(items=[], subscriptions=[{"sku": "SUPPORT-PLAN", "billing_cycle": "YEARLY"}])
    assert parse_order(only_subscription, today=TODAY).total == Decimal("0.00")


@pytest.mark.parametrize("field, value", [("order_type", "online"), ("order_type", "RETAIL")])
def test_order_type_enum(field, value):
    error = only_error(minimal(**{field: value}))
    assert error.field == "order_type" and "'ONLINE' or 'OFFLINE'" in error.message and repr(value) in error.message


# --- items ---------------------------------------------------------------------------------------------------------


def test_item_kinds_need_sku_or_name():
    assert only_error(minimal(items=[{"unit_price": 1}])).field == "items[0].sku"
    assert only_error(minimal(items=[{"type": "TAX", "unit_price": 1}])).field == "items[0].name"
    error = only_error(minimal(items=[{"type": "FEE", "sku": "X", "name": "Fee", "unit_price": 1}]))
    assert (error.field, error.message) == ("items[0].sku", "FEE items have no sku")
    assert only_error(minimal(items=[{"type": "GIFT", "name": "x", "unit_price": 1}])).field == "items[0].type"


@pytest.mark.parametrize("quantity", [0, -1, 2.5, "2", True, None])
def test_quantity_is_a_whole_number_from_1(quantity):
    assert only_error(minimal(items=[{"sku": "X", "unit_price": 1, "quantity": quantity}])).field == "items[0].quantity"


def test_discount_lines_subtract_and_cannot_make_the_total_negative():
    items = [{"sku": "X", "unit_price": "10.00", "quantity": 2}, {"type": "DISCOUNT", "name": "10%", "unit_price": "2.00"}]
    assert parse_order(minimal(items=items), today=TODAY).total == Decimal("18.00")
    items[1]["unit_price"] = "25.00"
    assert "negative" in only_error(minimal(items=items)).message


def test_blank_text_is_an_error_where_required_and_none_where_optional():
    assert only_error(minimal(items=[{"sku": "  ", "unit_price": 1}])).field == "items[0].sku"
    order = parse_order(minimal(notes="  ", items=[{"sku": " X ", "unit_price": 1, "description": ""}]), today=TODAY)
    assert order.notes is None and order.items[0].sku == "X" and order.items[0].description is None


# --- payments --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payment", [{"amount": 1}, {"amount": 1, "method": "Cash", "charge_payment_method_id": "1"}])
def test_payment_needs_exactly_one_way(payment):
    error = only_error(minimal(payments=[payment]))
    assert error.field == "payments[0].method" and "exactly one" in error.message


def test_stored_card_charge():
    order = parse_order(minimal(payments=[{"amount": "12.50", "charge_payment_method_id": 1}]), today=TODAY)
    assert order.payments[0].charge_payment_method_id == "1" and order.payments[0].method is None


@pytest.mark.parametrize("amount", ["0", "-1", "0.00"])
def test_payment_amount_positive(amount):
    assert only_error(minimal(payments=[{"amount": amount, "method": "Cash"}])).field == "payments[0].amount"


def test_payments_may_not_exceed_total():
    error = only_error(minimal(payments=[{"amount": "10", "method": "Cash"}, {"amount": "2.51", "method": "Cash"}]))
    assert error.field == "payments" and error.message == "payments total 12.51 exceeds the order total 12.50"


def test_payment_external_ids_unique():
    payments = [{"amount": "1", "method": "Cash", "external_id": "p1"}, {"amount": "1", "method": "Cash", "external_id": "p1"}]
    assert only_error(minimal(payments=payments)).field == "payments"


def test_payment_times_need_offsets():
    assert only_error(minimal(payments=[{"amount": 1, "method": "Cash", "paid_at": "2024-01-01T00:00:00"}])).field == (
        "payments[0].paid_at")


# --- custom fields, promo codes ------------------------------------------------------------------------------------------


def test_custom_fields_values_and_labels():
    order = parse_order(minimal(custom_fields={"Channel": "Shopify", "Boxes": 2, "Weight": 1.5, "Gift": True}), today=TODAY)
    assert order.custom_fields == {"Channel": "Shopify", "Boxes": 2, "Weight": Decimal("1.5"), "Gift": True}
    assert only_error(minimal(custom_fields={" ": "x"})).field == "custom_fields[' ']"
    error = only_error(minimal(custom_fields={"Tags": ["a", "b"]}))
    assert error.field == "custom_fields['Tags']" and "text, a number or true/false" in error.message


def test_promo_codes_are_strings():
    assert parse_order(minimal(promo_codes=["SPRING"]), today=TODAY).promo_codes == ["SPRING"]
    assert only_error(minimal(promo_codes=[5])).field == "promo_codes[0]"


# --- subscriptions -----------------------------------------------------------------------------------------------------


def subscription(**changes) -> dict:
    return minimal(subscriptions=[{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY", **changes}])


def test_subscription_defaults():
    sub = parse_order(subscription(), today=TODAY).subscriptions[0]
    assert (sub.quantity, sub.auto_charge, sub.start_date, sub.billing_amount) == (1, False, None, None)


def test_start_date_in_the_past_is_an_error_with_the_fix():
    error = only_error(subscription(start_date="2024-01-01"))
    assert error.field == "subscriptions[0].start_date"
    assert str(error) == ("subscriptions[0].start_date: start_date 2024-01-01 is in the past (today is 2026-11-26 UTC); "
                          "Keap only accepts today or later; drop it to start today or set a future date")


def test_start_date_today_or_later_is_fine_and_today_is_injectable():
    assert parse_order(subscription(start_date="2026-11-26"), today=TODAY).subscriptions[0].start_date == TODAY
    assert errors_of(subscription(start_date="2026-11-26"), today=date(2026, 11, 27))
    assert parse_order(subscription(start_date=(date.today() + timedelta(days=2)).isoformat()))  # real UTC today


@pytest.mark.parametrize("changes, field", [({"billing_cycle": "MONTH"}, "billing_cycle"), ({"quantity": 0}, "quantity"),
                                            ({"auto_charge": "yes"}, "auto_charge"), ({"start_date": "15/12/2026"}, "start_date"),
                                            ({"billing_amount": "9.999"}, "billing_amount"),
                                            ({"charge_payment_method_id": "1"}, "charge_payment_method_id")])
def test_subscription_rules(changes, field):
    assert only_error(subscription(**changes)).field == f"subscriptions[0].{field}"


def test_same_subscription_twice_is_an_error():
    data = minimal(subscriptions=[{"sku": "COFFEE-CLUB", "billing_cycle": "MONTHLY"}] * 2)
    assert "use one subscription with a higher quantity" in only_error(data).hint


# --- unknown fields, error texts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, mutate", [
    ("colour", lambda d: d.update(colour="red")),
    ("customer.billing_address.street", lambda d: d["customer"]["billing_address"].update(street="x")),
    ("items[1].price", lambda d: d["items"][1].update(price="5")),
    ("payments[0].currency", lambda d: d["payments"][0].update(currency="USD")),
    ("subscriptions[0].plan", lambda d: d["subscriptions"][0].update(plan="x")),
])
def test_unknown_fields_are_named_with_the_allowed_ones(path, mutate):
    data = example()
    mutate(data)
    error = only_error(data)
    assert error.field == path and error.message.startswith(f"unknown field {path.split('.')[-1].split(']')[-1]!r}")
    assert "allowed:" in error.message and "spelling" in error.hint


def test_unknown_field_lists_that_models_fields():
    data = example()
    data["items"][0]["colour"] = "red"
    assert "(allowed: type, sku, name, description, quantity, unit_price, unit_cost)" in only_error(data).message


def test_errors_name_every_field_and_never_show_customer_data():
    data = example()
    data["customer"].update(email="ana.lima@example", phone=["+1 512 555 0100"], surname="Lima")
    data["customer"]["billing_address"].update(country_code="Austin", region="78701")
    data["items"][0]["unit_price"] = "19.999"
    with pytest.raises(OrderInvalid) as caught:
        parse_order(data, today=TODAY)
    text = str(caught.value)
    assert text.startswith("order shop-1001: ")
    fields = {e.field for e in caught.value.errors}
    assert {"customer.email", "customer.phone", "customer.surname", "customer.billing_address.country_code",
            "items[0].unit_price"} <= fields
    assert all(e.hint for e in caught.value.errors)
    for value in PII:
        assert value not in text


def test_order_invalid_survives_pickle():
    with pytest.raises(OrderInvalid) as caught:
        parse_order(minimal(items=[{"sku": "X", "unit_price": "1.001"}]), today=TODAY)
    copy_ = pickle.loads(pickle.dumps(caught.value))
    assert str(copy_) == str(caught.value) and copy_.errors == caught.value.errors and isinstance(copy_, ValueError)


def test_not_an_object():
    assert only_error(["not", "an", "order"]).message == "must be a JSON object"


# --- round trip and schema ----------------------------------------------------------------------------------------------------


def test_json_dump_round_trips_with_money_as_strings():
    order = parse_order(example(), today=TODAY)
    dumped = order.model_dump(mode="json")
    assert dumped["items"][0]["unit_price"] == "19.90" and dumped["payments"][0]["amount"] == "48.50"
    assert dumped["order_time"] == "2024-03-05T14:22:10Z" and dumped["subscriptions"][0]["start_date"] == "2026-12-15"
    again = parse_order(json.loads(json.dumps(dumped)), today=TODAY)
    assert again == order and again.payments[0].key == order.payments[0].key


def test_round_trip_of_defaults_numbers_and_offsets():
    order = parse_order(minimal(order_time="2024-01-02T03:04:05.250+05:30", custom_fields={"W": 1.25, "N": 3},
                                payments=[{"amount": 2, "method": "Cash"}]), today=TODAY)
    again = parse_order(json.loads(json.dumps(order.model_dump(mode="json"))), today=TODAY)
    assert again == order and again.payments[0].key == order.payments[0].key
    assert again.order_time.utcoffset() == timedelta(hours=5, minutes=30)


def test_schema_is_valid_and_agrees_with_the_parser():
    schema = order_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    plain = json.loads(EXAMPLE_JSON)
    assert not list(validator.iter_errors(plain))
    assert not list(validator.iter_errors(parse_order(example(), today=TODAY).model_dump(mode="json")))
    rejected = [
        {**plain, "colour": "red"},
        {**plain, "order_time": "2024-03-05T14:22:10"},
        {**plain, "items": [{"type": "TAX", "sku": "X", "name": "t", "unit_price": "1"}]},
        {**plain, "items": [{"unit_price": "1"}]},
        {**plain, "payments": [{"amount": "1"}]},
        {**plain, "items": [], "subscriptions": []},
        {**plain, "external_id": "a;b"},
        {**plain, "order_type": "RETAIL"},
    ]
    for data in rejected:
        assert list(validator.iter_errors(data)), data
        with pytest.raises(OrderInvalid):
            parse_order(json.loads(json.dumps(data), parse_float=Decimal), today=TODAY)


def test_order_model_is_the_public_type():
    assert isinstance(parse_order(example(), today=TODAY), Order)


# --- what Keap can store and search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["a;b@example.com", "a==b@example.com", "a=b@example.com", "ana*@example.com",
                                   "a,b@example.com", '"a b"@example.com', "ana@example.com*", "ana@exa_mple.com",
                                   "a..b@example.com", "ana@example.c", "x" * 70 + "@example.com"])
def test_emails_keap_cannot_search_or_store_are_refused(email):
    error = only_error(minimal(customer={"email": email}))
    assert error.field == "customer.email" and email not in str(error)


@pytest.mark.parametrize("email", ["o'brien@example.com", "a.b+tag@sub.example.co.uk", "x_y-z@example.org"])
def test_ordinary_emails_pass(email):
    assert parse_order(minimal(customer={"email": email}), today=TODAY).customer.email == email


@pytest.mark.parametrize("where, field, limit", [
    ("customer", "given_name", 40), ("customer", "family_name", 40), ("customer", "phone", 40),
    ("billing_address", "line1", 75), ("billing_address", "locality", 50), ("billing_address", "postal_code", 15),
    ("shipping_address", "line1", 100), ("shipping_address", "postal_code", 20), ("order", "notes", 65535),
])
def test_keap_field_lengths(where, field, limit):
    def order_with(value):
        data = minimal()
        if where == "order":
            data[field] = value
        elif where == "customer":
            data["customer"][field] = value
        else:
            data["customer"][where] = {field: value}
        return data

    assert parse_order(order_with("x" * limit), today=TODAY)
    error = only_error(order_with("x" * (limit + 1)))
    assert error.field.endswith(field) and f"at most {limit} characters" in error.message


def test_region_becomes_an_iso_3166_2_region_code():
    address = lambda **a: parse_order(minimal(customer={"email": "x@example.com", "billing_address": a}),  # noqa: E731
                                      today=TODAY).customer.billing_address
    assert address(region="TX", country_code="USA").region_code == "US-TX"
    assert address(region="new york", country_code="USA").region_code == "US-NY"
    assert address(region="Île-de-France", country_code="FRA").region_code == "FR-IDF"
    unknown = address(region="Somewhere", country_code="USA")
    assert (unknown.region, unknown.region_code) == ("Somewhere", None)  # kept as (deprecated) text
    assert address(region_code="US-TX", country_code="USA").region_code == "US-TX"
    assert only_error(minimal(customer={"email": "x@example.com", "billing_address": {
        "region_code": "DE-BE", "country_code": "USA"}})).field == "customer.billing_address.region_code"
    assert only_error(minimal(customer={"email": "x@example.com", "billing_address": {
        "region_code": "US-ZZ", "country_code": "USA"}})).field == "customer.billing_address.region_code"
    assert only_error(minimal(customer={"email": "x@example.com", "billing_address": {
        "country_code": "XYZ"}})).field == "customer.billing_address.country_code"


def test_schema_refuses_what_the_validator_refuses_for_amounts():
    validator = jsonschema.Draft202012Validator(json.loads(json.dumps(order_json_schema()), parse_float=Decimal))
    for amount in ["-19.90", "1e3", "1E+3", "1_000", "\u0663\u0660\u0660\u0665", "19.999", " 1.00", "1,000"]:
        data = minimal(items=[{"sku": "X", "unit_price": amount}])
        assert list(validator.iter_errors(data)), amount
        with pytest.raises(OrderInvalid):
            parse_order(data, today=TODAY)
    for amount in ["19.90", "0", "0.5", 19.9, 3, Decimal("1E+3")]:
        data = minimal(items=[{"sku": "X", "unit_price": amount}])
        assert not list(validator.iter_errors(json.loads(json.dumps(data, default=str), parse_float=Decimal)
                                              if not isinstance(amount, Decimal) else data)), amount
        assert parse_order(data, today=TODAY)
