"""Each store export format through the real pipeline (worker + sandbox), then read back with verify."""
from __future__ import annotations

import io
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from admin.verify import verify_file
from producers.backfill import Backfill
from producers.sources import detect_format
from producers.sources.base import ReadOptions, parse_payment_map

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "sources" / "fixtures"
# SKUs of the reference's synthetic orders, which the sandbox's seed catalog does not have.
FIXTURE_SKUS = {"TEE-BLK-M": "20.00", "MUG-WHT": "12.50", "STK-PACK": "3.00", "CANDLE-LAV": "18.00",
                "SCARF-RED": "45.00"}


@pytest.fixture(scope="module")
def fixture_products(worker):
    for sku, price in FIXTURE_SKUS.items():
        if worker.keap.products.find_by_sku(sku) is None:
            worker.keap.products.create({"name": sku.title(), "sku": sku, "price": Decimal(price),
                                         "short_description": sku.title()})


@pytest.mark.parametrize("path, fmt, invalid", [
    (ROOT / "examples" / "shopify_orders_export.csv", "shopify", 0),
    (ROOT / "examples" / "woocommerce_orders.json", "woocommerce", 0),
    (FIXTURES / "shopify_orders_export.csv", "shopify", 0),
    (FIXTURES / "woocommerce_rest.json", "woocommerce", 0),
    (FIXTURES / "woocommerce_aoe.csv", "woocommerce-aoe", 1),  # its refunded order has quantity 0 left
    (FIXTURES / "woocommerce_webtoffee.csv", "woocommerce-webtoffee", 0),
    (FIXTURES / "woocommerce_skyverge_items.csv", "woocommerce-skyverge", 0),
], ids=lambda value: value.name if isinstance(value, Path) else None)
def test_store_export_is_imported_and_verified(ctx, producer, fixture_products, ext, path, fmt, invalid):
    options = replace(
        ReadOptions.from_settings(), id_prefix=f"{ext}-", store_timezone="America/New_York",
        missing_email_placeholder="order-{external_id}@no-email.invalid",
        payment_methods=ReadOptions.from_settings().payment_methods | parse_payment_map(
            "PayPal Express Checkout=Credit Card (Manual);PayPal=Credit Card (Manual);"
            "ppcp-gateway=Credit Card (Manual)"))
    assert detect_format(path, None, options) == fmt
    report = io.StringIO()
    progress = Backfill(producer, window=5, out=io.StringIO(), report=report).run(path, wait=True, options=options)

    assert (progress.invalid, progress.failed) == (invalid, 0), (report.getvalue(), progress.failures)
    assert progress.done == progress.valid > 0
    checked, problems = verify_file(path, None, ctx, options)
    assert checked == progress.valid and problems == []
