"""The stores' own webhooks: Shopify (`orders/create`, `orders/paid`, `orders/updated`) and WooCommerce
(`order.created`, `order.updated`, the ping). The signature is checked on the raw body before anything is parsed;
a redelivery is answered without work; a body that maps to no valid order is answered 200 (the store stops
retrying) and noted for an operator. Redis away: Shopify gets 503 + Retry-After (it retries for 4 hours);
WooCommerce, which never retries, has its delivery kept on disk (spool.py) and imported once Redis answers."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from admin.web.common import UNAVAILABLE, ingest, parse_json, read_body, secrets_of, signed, unavailable
from admin.web.spool import Spool
from producers import deliveries
from producers.enqueue import Producer
from producers.sources import shopify_api, woocommerce
from producers.sources.base import Format, ReadOptions

log = logging.getLogger(__name__)
SHOPIFY_TOPICS = {"orders/create", "orders/paid", "orders/updated"}
WOO_TOPICS = {"order.created", "order.updated"}
DRAIN_EVERY_SECONDS = 2.0


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    """Drains the WooCommerce spool in the background while the service runs."""
    task = asyncio.create_task(_drain_forever(app))
    yield
    task.cancel()


router = APIRouter(prefix="/webhooks", tags=["webhooks"], lifespan=lifespan)


def handle(producer: Producer, options: ReadOptions, store: str, fmt: Format, delivery: str, data: Any) -> dict:
    """One verified delivery: dedupe on its key, map, validate, register or update (producers/deliveries.py)."""
    if producer.ledger.delivery_seen(store, delivery):
        return {"status": "duplicate"}
    row = deliveries.read_delivery(data, fmt, options)
    outcome = deliveries.apply(producer, row, f"webhook:{store}", f"{store}-delivery:{delivery[:64]}")
    producer.ledger.mark_delivery(store, delivery)
    log.info("webhook %s: order %s %s", store, outcome.external_id, outcome.result)
    return {"status": outcome.result, "external_id": outcome.external_id, "detail": outcome.detail}


async def _verified(request: Request, header: str, secret) -> bytes:
    settings = request.app.state.settings
    raw = await read_body(request, settings.http_max_body_bytes)
    if not signed(raw, request.headers.get(header), secrets_of(secret)):
        raise HTTPException(401, f"bad or missing {header}")  # nothing parsed, nothing stored
    return raw


@router.post("/shopify")
async def shopify(request: Request):
    """Shopify order webhooks; the dedupe key is (topic, X-Shopify-Event-Id), and the order's external id."""
    settings = request.app.state.settings
    raw = await _verified(request, "x-shopify-hmac-sha256", settings.shopify_webhook_secret)
    topic = request.headers.get("x-shopify-topic", "")
    if topic not in SHOPIFY_TOPICS:
        return {"status": "ignored", "topic": topic[:60]}
    data = parse_json(raw, settings.http_max_json_depth)
    if isinstance(data, dict) and data.get("test") is True and not settings.webhook_test_orders:
        return {"status": "skipped: a test order (WEBHOOK_TEST_ORDERS)"}
    event = (request.headers.get("x-shopify-event-id") or request.headers.get("x-shopify-webhook-id")
             or hashlib.sha256(raw).hexdigest())
    try:
        return await ingest(request.app, handle, request.app.state.producer, _options(request), "shopify",
                            shopify_api.FORMAT, f"{topic}:{event[:100]}", data)
    except UNAVAILABLE:
        return unavailable()


@router.post("/woocommerce")
async def woocommerce_webhook(request: Request):
    """WooCommerce order webhooks (the body is the REST v3 order) and the ping sent when a webhook is created."""
    settings = request.app.state.settings
    if "x-wc-webhook-signature" not in request.headers:
        raw = await read_body(request, 1000)
        if raw.startswith(b"webhook_id="):
            return {"status": "pong"}  # unsigned by WooCommerce; answered 200 and nothing else
        raise HTTPException(401, "missing x-wc-webhook-signature")
    raw = await _verified(request, "x-wc-webhook-signature", settings.woocommerce_webhook_secret)
    topic = request.headers.get("x-wc-webhook-topic", "")
    if topic not in WOO_TOPICS:
        return {"status": "ignored", "topic": topic[:60]}
    data = parse_json(raw, settings.http_max_json_depth)
    delivery = (request.headers.get("x-wc-webhook-delivery-id") or hashlib.sha256(raw).hexdigest())[:100]
    try:
        return await ingest(request.app, _woo, request.app, delivery, data)
    except UNAVAILABLE:
        try:
            name = await run_in_threadpool(Spool(settings.webhook_spool_dir).keep,
                                           {"topic": topic, "delivery": delivery, "body": raw.decode("utf-8")})
        except OSError as exc:
            log.error("webhook woocommerce: Redis away and the spool %s cannot be written (%s): the delivery is lost",
                      settings.webhook_spool_dir, type(exc).__name__)
            return unavailable()
        log.warning("webhook woocommerce: Redis away: delivery kept in the spool as %s", name)
        return JSONResponse({"status": "kept: imported once Redis answers"}, status_code=202)


def _woo(app: FastAPI, delivery: str, data: Any) -> dict:
    return handle(app.state.producer, app.state.read_options, "woocommerce", woocommerce.REST, delivery, data)


def _options(request: Request) -> ReadOptions:
    return request.app.state.read_options


def drain(app: FastAPI) -> int:
    """Import the WooCommerce deliveries kept while Redis was away (oldest first); stops when Redis is away again."""
    spool = Spool(app.state.settings.webhook_spool_dir)
    return spool.drain(lambda record: _woo(app, record["delivery"], parse_json(
        record["body"].encode("utf-8"), app.state.settings.http_max_json_depth)), away=UNAVAILABLE)


async def _drain_forever(app: FastAPI) -> None:
    while True:
        await asyncio.sleep(DRAIN_EVERY_SECONDS)
        try:
            handled = await run_in_threadpool(drain, app)
        except UNAVAILABLE:
            continue
        except Exception:  # a kept delivery that cannot be imported must not stop the others' draining for good
            log.exception("webhook woocommerce: the spool could not be drained")
            continue
        if handled:
            log.info("webhook woocommerce: %d kept deliveries imported", handled)
