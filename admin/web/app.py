"""The app factory: settings, ledger and producer injected once into `app.state`; liveness and readiness probes; each
part of the service (API, webhooks, console) is a router of its own module, included here."""
from __future__ import annotations

import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from admin.web import api, metrics, webhooks
from admin.web.console import pages as console
from producers.enqueue import Producer
from producers.sources.base import ReadOptions
from worker import context
from worker.settings import Settings

READY_RETRY_AFTER = 5  # seconds a load balancer or a store should wait before asking a service without Redis again


def create_app(settings: Settings, producer: Producer | None = None) -> FastAPI:
    """The whole service; `producer` defaults to one on the settings' Redis (tests give their own prefix)."""
    app = FastAPI(title="keap-orders", summary="Import complete orders into Keap, exactly once.",
                  openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.producer = producer or Producer(settings, context.ledger(settings, quick_redis(settings)))
    app.state.read_options = ReadOptions.from_settings(settings)
    metrics.install(app, settings.prometheus_multiproc_dir)
    app.include_router(api.router)
    app.include_router(webhooks.router)
    app.include_router(console.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        """Liveness: the process answers (it never depends on Redis or Keap, so a Redis outage restarts nothing)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz():
        """Readiness: Redis answers, so an order posted now can be registered."""
        try:
            app.state.producer.ledger.now()  # one round trip to the Redis the ledger uses
        except redis.RedisError:
            return JSONResponse({"status": "redis unavailable"}, status_code=503,
                                headers={"Retry-After": str(READY_RETRY_AFTER)})
        return {"status": "ready"}

    return app


def quick_redis(settings: Settings) -> redis.Redis:
    """A client that fails within seconds when Redis is away (a store waits 5 s at most; the caller gets a 503 and
    sends again), instead of the workers' patient retries."""
    return redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=1)
