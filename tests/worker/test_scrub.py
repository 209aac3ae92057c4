"""What the scrubber removes from text and structures (Sentry events, log lines, Keap's words in the ledger), and what
it must leave alone for the text to stay useful."""
from __future__ import annotations

import pytest

from worker import scrub
from worker.keap.errors import error_from_response, keap_message


@pytest.mark.parametrize("text, secret", [
    ("Invalid email: 'jane.doe+vip@example.com'", "jane.doe+vip@example.com"),
    ("GET /crm/rest/v2/contacts?filter=email%3D%3Djane.doe%40example.com", "jane.doe%40example.com"),
    ("call +1 555 010 4477", "555 010 4477"),
    ("call (555) 010-4477", "010-4477"),
    ("call 555.010.4477", "555.010.4477"),
    ("lives at 742 Evergreen Terrace, Springfield", "742 Evergreen"),
    ("shipped to 221B Baker Street", "Baker"),
    ("Lieferung an Hauptstraße 5", "Hauptstraße"),
    ("{'given_name': 'Zebulon', 'sku': 'TSHIRT-M'}", "Zebulon"),
    ('{"family_name":"Quixworth","line1":"742 Evergreen Terrace"}', "Quixworth"),
    ("X-Keap-API-Key: KeapAK-0123456789abcdef", "KeapAK-0123456789abcdef"),
    ("Authorization: Bearer abcDEF123456ghiJKL", "abcDEF123456ghiJKL"),
    ("https://example/cb?code=s3cr3tCode&state=xyz", "s3cr3tCode"),
    ("refresh_token=Zx9aQ2bP4dK8mN1rT6vW3yB5", "Zx9aQ2bP4dK8mN1rT6vW3yB5"),
    ("key 3q2-7wQ0eXGxPbUK1kXvbTk0q8HlQxGx2vXnKqD7n0Y= rotated", "3q2-7wQ0eXGxPbUK1kXvbTk0q8HlQxGx2vXnKqD7n0Y="),
    ("stored gAAAAABkX2VjZk9zZ3l0aGluZ2hlcmVpc2xvbmc=", "gAAAAABkX2VjZk9zZ3l0aGluZ2hlcmVpc2xvbmc="),
    ("access Zx9aQ2bP-4dK8mN1rT6vW3yB5cE7fH0j here", "Zx9aQ2bP-4dK8mN1rT6vW3yB5cE7fH0j"),
    ("could not convert string to float: 'Zebulon Quixworth'", "Zebulon"),
    ("invalid literal for int() with base 10: 'Zebulon'", "Zebulon"),
    ("[type=string_too_long, input_value='Zebulon Quixworth', input_type=str]", "Zebulon"),
])
def test_customer_data_and_secrets_are_removed_from_text(text, secret):
    assert secret not in scrub.text(text)


@pytest.mark.parametrize("text", [
    "order t-8f3a9c0e1b2d: Keap computed the order total as 67.92, the order says 74.50 (Keap order 25)",
    "at 2024-03-05 14:22:10 UTC, epoch 1732670000.123, Redis at 127.0.0.1:6379, HTTP 400, 12345678 ms",
    "task 8f14e45f-ceea-467f-a1b2-1234567890ab on e2e-1a2b3c4d-keeper-12345@box",
    "lease 9f86d081884c7d659a2feaa0c55ad015, contact key 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    'File "/work/wt/issue12/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task',
    "order shop-1001: items[0].sku: SKU 'TSHIRT-XL' is not a product in Keap; run `keap-orders retry shop-1001`",
])
def test_operational_text_is_left_alone(text):
    assert scrub.text(text) == text


def test_structures_are_filtered_by_key_and_scrubbed_by_value():
    event = {"customer": {"email": "a@b.io"}, "ticket": "abc", "args": ["shop-1"], "api_key": "x", "name": "",
             "notes": ["call +1 555 010 4477"], "nested": {"Authorization": "Bearer abcdefgh12345"}}
    assert scrub.data(event) == {"customer": "[filtered]", "ticket": "abc", "args": ["shop-1"], "api_key": "[filtered]",
                                 "name": "", "notes": ["call [phone]"], "nested": {"Authorization": "[filtered]"}}


def test_keap_text_is_scrubbed_before_it_is_clipped_stored_or_sent():
    body = {"status": "Bad Request", "message": "Invalid email: 'zebulon@example.com' for contact "
                                                "+1 555 010 4477" + " x" * 400}
    said = keap_message(body)
    assert "zebulon" not in said and "555 010" not in said and len(said) <= 300
    error = error_from_response(400, body, None, method="POST", path="/v2/contacts")
    assert "zebulon" not in str(error) and "[filtered]" in str(error)
