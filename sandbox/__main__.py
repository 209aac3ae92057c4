"""`python -m sandbox --port 8700 ...`: run the local Keap until Ctrl-C."""
from __future__ import annotations

import argparse
import json

from sandbox.auth import API_KEY
from sandbox.readings import READINGS, parse_readings
from sandbox.server import run


def _latency(text: str):
    # "50" or "20,200" (a [min, max] range in milliseconds)
    parts = [float(p) for p in text.split(",")]
    return parts[0] if len(parts) == 1 else parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="A local Keap REST v2 sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700, help="0 picks a free port")
    parser.add_argument("--api-key", default=API_KEY, help="accepted X-Keap-API-Key value")
    parser.add_argument("--limits", default="oauth", help="oauth | sak | off | e.g. 20/s,600/min,5000/day")
    parser.add_argument("--tenant-limits", default="tenant",
                        help="the account's limits, shared by every credential: tenant (10000/min,250000/day) | off | "
                             "e.g. 600/min,5000/day")
    parser.add_argument("--latency-ms", type=_latency, default=0, help="fixed ms, or MIN,MAX for a range")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible faults")
    parser.add_argument("--data", default=None, help="seed data JSON file (default: sandbox/seed.json)")
    parser.add_argument("--token-ttl", type=int, default=86400, help="OAuth access token lifetime in seconds")
    parser.add_argument("--reading", default=None, help="other readings of undocumented behaviour, comma-separated: "
                        + ", ".join(READINGS))
    args = parser.parse_args(argv)
    try:
        parse_readings(args.reading)
    except ValueError as exc:
        parser.error(str(exc))
    if args.data:
        json.load(open(args.data, encoding="utf-8"))  # fail fast with a clear JSON error
    run(host=args.host, port=args.port, api_key=args.api_key, limits=args.limits, latency_ms=args.latency_ms,
        seed=args.seed, data=args.data, token_lifetime=args.token_ttl, tenant_limits=args.tenant_limits,
        readings=args.reading)


if __name__ == "__main__":
    main()
