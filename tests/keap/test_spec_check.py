"""The spec check of tests/keap/conftest.py catches what it should (so a passing HTTP test means something)."""
import json

from tests.keap.conftest import SentRequest, SpecRecorder


def sent(method, path, body=None, **query):
    return SentRequest(method, path, {k: v if isinstance(v, list) else [v] for k, v in query.items()},
                       json.dumps(body).encode() if body is not None else None, exempt=False)


def test_conforming_requests_pass(keap_spec):
    recorder = SpecRecorder(keap_spec)
    recorder.sent += [
        sent("POST", "/rest/v2/orders/7/payments", {"payment_amount": 19.9, "apply_to_commissions": False}),
        sent("GET", "/rest/v2/orders", filter="contact_id==1", page_size="1000"),
        sent("PATCH", "/rest/v2/orders/7", {"custom_fields": [{"id": "3", "content": "x"}]},
             update_mask=["custom_fields"]),
        sent("POST", "/rest/v2/contacts", {"given_name": "A"}, duplicate_option="Email"),
    ]
    assert recorder.violations() == []


def test_violations_are_reported(keap_spec):
    recorder = SpecRecorder(keap_spec)
    recorder.sent += [
        sent("POST", "/rest/v2/orders/7/payments", {"payment_amount": "19.90", "apply_to_commissions": False}),
        sent("POST", "/rest/v2/orders", {"contact_id": "1", "order_time": "2024-05-21T23:00:00Z",
                                         "order_title": "t", "order_type": "ONLINE",
                                         "order_items": [{"quantity": 1, "price": 19.9}]}),
        sent("GET", "/rest/v2/orders", limit="10"),
        sent("GET", "/rest/v2/orders", page_size="5000"),
        sent("PATCH", "/rest/v2/orders/7", {}, update_mask=["total"]),
        sent("POST", "/rest/v2/contacts", {}, duplicate_option="Phone"),
        sent("GET", "/rest/v2/nothing"),
        sent("PUT", "/rest/v2/orders/7", {}),
        sent("POST", "/rest/v2/subscriptions"),
    ]
    problems = "\n".join(recorder.violations())
    for expected in ("payments: Invalid value for payment_amount", "Unrecognized property: price",
                     "'limit' is not declared", "page_size: 5000 is greater than the maximum",
                     "update_mask: 'total' is not one of", "duplicate_option: 'Phone' is not one of",
                     "/rest/v2/nothing: no such path", "has no PUT", "/rest/v2/subscriptions: the spec requires"):
        assert expected in problems, expected
    assert len(recorder.violations()) == 9
