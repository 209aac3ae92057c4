"""The HTTP service in process (the ASGI app through httpx) on the real Redis: own key prefix and queues, tokens and
webhook secrets of the test, cleaned afterwards."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.conftest import REDIS_URL

TOKEN, OPERATOR = "ingest-token-1", "operator-token-1"
SHOPIFY_SECRET, WOO_SECRET = "shpss_test", "woo-secret"


def web_settings(prefix: str, **overrides):
    from worker.settings import Settings

    return Settings(redis_url=REDIS_URL, key_prefix=prefix, live_queue=f"{prefix}.live",
                    backfill_queue=f"{prefix}.backfill", ingest_tokens=f"old-token,{TOKEN}", operator_tokens=OPERATOR,
                    shopify_webhook_secret=SHOPIFY_SECRET, woocommerce_webhook_secret=WOO_SECRET, **overrides)


@pytest.fixture
def client(key_prefix, redis_client, tmp_path):
    from fastapi.testclient import TestClient

    from admin.web.app import create_app
    from worker.app import configure

    settings = web_settings(key_prefix, webhook_spool_dir=str(tmp_path / "spool"))
    configure(settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.app_settings = settings
        yield test_client
    for queue in (settings.live_queue, settings.backfill_queue):
        redis_client.delete(queue)


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(body: bytes, topic: str = "orders/create", event: str = "ev-1", secret: str = SHOPIFY_SECRET):
    return {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": signature(body, secret), "X-Shopify-Event-Id": event,
            "Content-Type": "application/json"}


def woo_headers(body: bytes, topic: str = "order.created", delivery: str = "d-1", secret: str = WOO_SECRET):
    return {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": signature(body, secret),
            "X-WC-Webhook-Delivery-ID": delivery, "Content-Type": "application/json"}


def shopify_order(number: int = 1001, *, paid: bool = True, **overrides) -> dict:
    """A Shopify Admin API order resource as its webhooks send it (trimmed to what the reader reads)."""
    return {"id": 450789469 + number, "name": f"#{number}", "order_number": number, "email": "ada@example.com",
            "created_at": "2024-03-05T14:22:10-05:00", "processed_at": "2024-03-05T14:22:10-05:00",
            "currency": "USD", "financial_status": "paid" if paid else "pending", "test": False,
            "total_price": "44.80", "subtotal_price": "39.80", "total_tax": "0.00", "total_discounts": "0.00",
            "total_outstanding": "0.00" if paid else "44.80", "taxes_included": False,
            "payment_gateway_names": ["Cash on Delivery (COD)"],
            "customer": {"first_name": "Ada", "last_name": "Example"},
            "line_items": [{"sku": "TSHIRT-M", "title": "T-shirt", "quantity": 2, "price": "19.90"}],
            "shipping_lines": [{"title": "Post", "price": "5.00"}], **overrides}


def woo_order(number: int = 2001, *, paid: bool = True) -> dict:
    """A WooCommerce REST v3 order (the body of its order webhooks)."""
    return {"id": number, "number": str(number), "status": "processing" if paid else "pending", "currency": "USD",
            "date_created_gmt": "2024-03-05T19:22:10", "date_paid_gmt": "2024-03-05T19:23:00" if paid else None,
            "total": "44.80", "discount_total": "0.00", "shipping_total": "5.00",
            "payment_method": "cod", "payment_method_title": "Cash on delivery",
            "billing": {"first_name": "Ada", "last_name": "Example", "email": "ada@example.com", "country": "US"},
            "line_items": [{"sku": "TSHIRT-M", "name": "T-shirt", "quantity": 2, "subtotal": "39.80"}],
            "shipping_lines": [{"method_title": "Post", "total": "5.00"}]}


def dumps(data) -> bytes:
    return json.dumps(data).encode()
