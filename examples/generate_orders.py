"""Print a deterministic file of N varied, valid orders (JSONL, or CSV with --format csv) from the sandbox catalog.

Usage: python examples/generate_orders.py --count 200 --seed 7 [--prefix gen-] [--format jsonl|csv] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterator, TextIO

CENT = Decimal("0.01")
# sku: (name, price, cost, shippable) -- the sandbox's catalog.
CATALOG = {
    "TSHIRT-S": ("T-shirt (S)", "19.90", "7.10", True),
    "TSHIRT-M": ("T-shirt (M)", "19.90", "7.10", True),
    "TSHIRT-L": ("T-shirt (L)", "19.90", "7.10", True),
    "MUG-CLASSIC": ("Classic mug", "12.50", "4.20", True),
    "COFFEE-BEANS-1KG": ("Coffee beans 1 kg", "24.00", "11.00", True),
    "TEA-SAMPLER": ("Tea sampler", "15.00", "6.00", True),
    "GRINDER-PRO": ("Grinder Pro", "129.00", "61.00", True),
    "STICKER-PACK": ("Sticker pack", "4.50", "0.90", True),
    "EBOOK-BREWING": ("The Brewing Book (e-book)", "9.99", None, False),
    "GIFT-CARD-50": ("Gift card 50", "50.00", None, False),
}
PLANS = {("COFFEE-CLUB", "MONTHLY"): "25.00", ("COFFEE-CLUB", "YEARLY"): "270.00",
         ("SUPPORT-PLAN", "MONTHLY"): "9.00", ("SUPPORT-PLAN", "YEARLY"): "90.00"}
GIVEN = ["Ana", "Ben", "Carla", "Diego", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Mina", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wes", "Yara", "Zoe"]
FAMILY = ["Lima", "Okafor", "Brandt", "Novak", "Reyes", "Haddad", "Lindqvist", "Moreau", "Tanaka", "Kowalski",
          "Ferreira", "Quist", "Abara", "Delacroix", "Sorensen", "Ibarra", "Mbeki", "Castellano", "Varga", "Whitlock"]
STREETS = ["Oak St", "Maple Ave", "Birch Rd", "Cedar Ln", "Juniper Ct", "Willow Way", "Aspen Dr", "Elm Pl"]
# (locality, region, postal code prefix, sales tax rate): fictional street addresses in real US places.
PLACES = [("Austin", "TX", "787", "0.0825"), ("Denver", "CO", "802", "0.0881"), ("Portland", "OR", "972", "0"),
          ("Columbus", "OH", "432", "0.0775"), ("Madison", "WI", "537", "0.055"), ("Raleigh", "NC", "276", "0.0725")]
SHIPPING = [("UPS Ground", "5.00", "UPS"), ("USPS Priority", "8.50", "USPS"), ("FedEx 2Day", "14.00", "FedEx")]
CHANNELS = ["Shopify", "Shopify", "Shopify", "WooCommerce", "Phone", "Retail POS"]
METHODS = ["Credit Card (Manual)", "Credit Card (Manual)", "Check", "Cash"]
START = datetime(2023, 1, 1, tzinfo=timezone.utc)
SPAN_SECONDS = int((datetime(2026, 1, 1, tzinfo=timezone.utc) - START).total_seconds())


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def _customer(rng: random.Random, number: int) -> dict[str, Any]:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    locality, region, postal, _ = PLACES[number % len(PLACES)]
    address = {"line1": f"{rng.randint(10, 990)} {rng.choice(STREETS)}", "locality": locality, "region": region,
               "postal_code": f"{postal}{rng.randint(10, 99)}", "country_code": "USA"}
    customer = {"email": f"{given}.{family}.{number}@example.com".lower(), "given_name": given, "family_name": family,
                "phone": f"+1 555 01{number % 100:02d}", "billing_address": address}
    if number % 3 == 0:
        customer["shipping_address"] = {"first_name": given, "last_name": family, **address}
    if number % 7 == 0:
        customer["company"] = f"{family} {rng.choice(['Designs', 'Studio', 'Roasters', 'Consulting'])}"
    return customer


CARD_HOLDER = {"email": "card.holder@example.com", "given_name": "Casey", "family_name": "Holder",
               "billing_address": {"line1": "1 Card Ct", "locality": "Austin", "region": "TX",
                                   "postal_code": "78702", "country_code": "USA"}}


def _items(rng: random.Random, customer: dict, shipping: tuple, discount: bool) -> list[dict[str, Any]]:
    items = []
    for sku in rng.sample(sorted(CATALOG), rng.choice([1, 1, 2, 2, 3, 4])):
        name, price, cost, _ = CATALOG[sku]
        item = {"sku": sku, "name": name, "quantity": rng.choice([1, 1, 1, 2, 3]), "unit_price": price}
        if cost:
            item["unit_cost"] = cost
        items.append(item)
    subtotal = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
    if discount:
        off = (subtotal / 10).quantize(CENT, ROUND_HALF_UP)
        items.append({"type": "DISCOUNT", "name": "WELCOME10 (10% off)", "quantity": 1, "unit_price": str(off)})
        subtotal -= off
    if any(CATALOG[i["sku"]][3] for i in items if "sku" in i):
        items.append({"type": "SHIPPING", "name": shipping[0], "quantity": 1, "unit_price": shipping[1]})
    rate = Decimal(next(p[3] for p in PLACES if p[0] == customer["billing_address"]["locality"]))
    if rate:
        region = customer["billing_address"]["region"]
        items.append({"type": "TAX", "name": f"{region} sales tax", "quantity": 1, "unit_price": _money(subtotal * rate)})
    return items


def generate(count: int, seed: int, prefix: str = "gen-") -> Iterator[dict[str, Any]]:
    """Yield `count` valid orders in time order; every feature of the contract appears within any 25 orders."""
    rng = random.Random(seed)
    customers = [_customer(rng, n) for n in range(max(3, count // 3))]  # ~3 orders per customer: returning ones
    times = sorted(START + timedelta(seconds=rng.randrange(SPAN_SECONDS)) for _ in range(count))
    for index, when in enumerate(times):
        card = index % 25 == 11
        customer = CARD_HOLDER if card else rng.choice(customers)
        channel = rng.choice(CHANNELS)
        shipping = rng.choice(SHIPPING)
        order: dict[str, Any] = {
            "external_id": f"{prefix}{1001 + index}",
            "order_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "title": f"Order #{1001 + index}",
            "order_type": "OFFLINE" if channel in ("Phone", "Retail POS") else "ONLINE",
            "customer": customer,
        }
        subscription_only = index % 25 == 19
        if not subscription_only:
            order["items"] = _items(rng, customer, shipping, discount=index % 10 == 3)
            shipped = any(i["type"] == "SHIPPING" for i in order["items"] if "type" in i)
            order["custom_fields"] = {"Sales Channel": channel, "Fulfillment": shipping[2] if shipped else "Digital"}
        if subscription_only or index % 8 == 5:
            sku, cycle = rng.choice(sorted(PLANS))
            order["subscriptions"] = [{"sku": sku, "billing_cycle": cycle, "billing_amount": PLANS[sku, cycle],
                                       "quantity": 1, "auto_charge": False}]
        total = sum(Decimal(i["unit_price"]) * i["quantity"] * (-1 if i.get("type") == "DISCOUNT" else 1)
                    for i in order.get("items", []))
        paid_at = (when + timedelta(seconds=rng.randint(5, 600))).strftime("%Y-%m-%dT%H:%M:%SZ")
        if card:
            order["payments"] = [{"amount": _money(total), "charge_payment_method_id": "1"}]
        elif total and index % 12 == 6:
            order["payments"] = [{"amount": _money(total / 2), "method": "Check", "paid_at": paid_at,
                                  "notes": "Deposit; balance due on delivery"}]
        elif total and rng.random() < 0.75:
            method = "Cash" if channel == "Retail POS" else rng.choice(METHODS)
            payment = {"amount": _money(total), "method": method, "paid_at": paid_at}
            if method.startswith("Credit"):
                payment["external_id"] = f"ch_{rng.getrandbits(48):012x}"
            order["payments"] = [payment]
        if index % 9 == 4:
            order["notes"] = f"Imported from {channel}"
        yield order


def _write(orders: Iterator[dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "jsonl":
        for order in orders:
            out.write(json.dumps(order, separators=(",", ":")) + "\n")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from producers.sources.csv import write_csv
    from worker.contract import parse_order

    write_csv((parse_order(o) for o in orders), out, custom_field_labels=["Sales Channel", "Fulfillment"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prefix", default="gen-", help="external_id prefix (ids are <prefix>1001, ...)")
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument("--out", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    orders = generate(args.count, args.seed, args.prefix)
    if args.out:
        with open(args.out, "w", newline="" if args.format == "csv" else None, encoding="utf-8") as out:
            _write(orders, args.format, out)
    else:
        _write(orders, args.format, sys.stdout)


if __name__ == "__main__":
    main()
