"""The HTTP service's metrics on the keap_orders_* names: requests by route (the path template: no ids) and status,
and their latency; served at /metrics. With PROMETHEUS_MULTIPROC_DIR every server process writes its files there
(`keap-orders metrics` sums them with the workers'); without it, each process serves its own counts."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import Response

from worker.ops import metrics as ops

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def install(app: FastAPI, directory: str) -> None:
    ops.enable(directory)  # before prometheus_client is imported: it picks its storage then
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = None if directory else CollectorRegistry()
    requests = Counter(f"{ops.PREFIX}_http_requests", "HTTP requests by route (path template) and status.",
                       ["route", "status"], registry=registry)
    seconds = Histogram(f"{ops.PREFIX}_http_request_seconds", "HTTP request latency by route.", ["route"],
                        buckets=_BUCKETS, registry=registry)
    scrape = ops.registry(directory, None, ()) if directory else registry

    @app.middleware("http")
    async def count(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            requests.labels(path, str(status)).inc()
            seconds.labels(path).observe(time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    def serve_metrics() -> Response:
        return Response(generate_latest(scrape), media_type="text/plain; version=0.0.4")
