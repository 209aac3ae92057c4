"""Prometheus metrics: what the worker processes count, and the one scrape endpoint per host that serves them.

Prefork workers are many processes, so metrics use prometheus-client's multiprocess mode: every process writes its
own files under PROMETHEUS_MULTIPROC_DIR and `keap-orders metrics` (`serve`) sums them at scrape time, adding the
ledger's gauges read from Redis then (one SCARD per status, one LLEN per queue, one ZCOUNT: never a scan).

prometheus-client chooses how values are stored when it is first imported, from the environment; so it is imported
only once the worker has set PROMETHEUS_MULTIPROC_DIR (`enable`), never at this module's import.
"""
from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING, Any, Iterable

from worker.ledger import Ledger

if TYPE_CHECKING:
    from worker.keap.quota import RateLimits

PREFIX = "keap_orders"
_STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Which outcomes of a step run were waits for the rate limit, by the reason the runner gives.
RATE_LIMIT_REASONS = {"rate limit": "throttle", "rate limited by Keap": "keap_429", "daily quota": "daily_quota"}


class Metrics:
    """The counters one worker process writes (in multiprocess mode, to its own files)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.steps = Counter(f"{PREFIX}_steps", "Step runs by step and outcome (next, done, single, retry, parked, "
                             "failed, skipped, busy, lost, interrupted).", ["step", "outcome"], registry=registry)
        self.failures = Counter(f"{PREFIX}_order_failures", "Orders that failed, by step and error kind.",
                                ["step", "kind"], registry=registry)
        self.step_seconds = Histogram(f"{PREFIX}_step_seconds", "Duration of a step run.", ["step"],
                                      buckets=_STEP_BUCKETS, registry=registry)
        self.keap_calls = Counter(f"{PREFIX}_keap_calls", "Keap answers by method, route (the path template: no ids, "
                                  "no query) and HTTP status.", ["method", "route", "status"], registry=registry)
        self.rate_limit_waits = Counter(f"{PREFIX}_rate_limit_waits", "Step runs that waited for the rate limit: "
                                        "throttle (the shared limit had no slot soon enough), keap_429 (Keap "
                                        "answered 429), daily_quota.", ["reason"], registry=registry)
        self.quota_remaining = Gauge(f"{PREFIX}_quota_remaining", "Calls left in Keap's windows, from the "
                                     "x-keap-* headers of the last answer.", ["window"], registry=registry,
                                     multiprocess_mode="mostrecent")

    def step(self, step: str, outcome: str, seconds: float, *, error_kind: str = "", reason: str = "") -> None:
        self.steps.labels(step, outcome).inc()
        self.step_seconds.labels(step).observe(seconds)
        if outcome == "failed":
            self.failures.labels(step, error_kind or "internal").inc()
        if reason in RATE_LIMIT_REASONS:
            self.rate_limit_waits.labels(RATE_LIMIT_REASONS[reason]).inc()

    def keap_answer(self, method: str, route: str, status: int, limits: RateLimits | None) -> None:
        self.keap_calls.labels(method, route, str(status)).inc()
        if limits is None:
            return
        for window, value in (("throttle", limits.throttle_available), ("quota", limits.quota_available),
                              ("tenant_throttle", limits.tenant_throttle_available),
                              ("tenant_quota", limits.tenant_quota_available)):
            if value is not None:
                self.quota_remaining.labels(window).set(value)


_lock = threading.Lock()
_metrics: Metrics | None = None


def enable(directory: str) -> None:
    """Make this process (and the pool processes it forks) write metrics to `directory`; call before anything
    imports prometheus_client. A no-op without a directory: then nothing is recorded."""
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import values

    # Files are named after the writing process. Containers sharing one directory (compose) each count pids from 1,
    # so the host name (the container's) goes into the name too: two processes never write the same file.
    host = socket.gethostname()
    values.ValueClass = values.MultiProcessValue(lambda: f"{host}-{os.getpid()}")


def current() -> Metrics | None:
    """This process's metrics, or None when metrics are off (no PROMETHEUS_MULTIPROC_DIR)."""
    global _metrics
    if _metrics is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        with _lock:
            if _metrics is None:
                _metrics = Metrics()  # not registered: in multiprocess mode the scraper reads the files
    return _metrics


class LedgerCollector:
    """Gauges read from Redis at scrape time: orders per status, messages waiting per queue, orders the keeper
    should have looked at over a minute ago (no keeper running?). O(1) per status and queue."""

    def __init__(self, ledger: Ledger, queues: Iterable[str]) -> None:
        self.ledger = ledger
        self.queues = list(queues)

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        gauges = self.ledger.gauges(self.queues)
        orders = GaugeMetricFamily(f"{PREFIX}_orders", "Orders in the ledger by status.", labels=["status"])
        for status, count in gauges.orders.items():
            orders.add_metric([status], count)
        yield orders
        queued = GaugeMetricFamily(f"{PREFIX}_queue_messages", "Messages waiting in a Celery queue (Redis list).",
                                   labels=["queue"])
        for queue, length in gauges.queues.items():
            queued.add_metric([queue], length)
        yield queued
        yield GaugeMetricFamily(f"{PREFIX}_keeper_overdue", "Active orders the keeper should have looked at over a "
                                "minute ago (non-zero for long: is the keeper running?).", value=gauges.overdue)
        yield GaugeMetricFamily(f"{PREFIX}_audit_reports", "Findings of the audits of uncertain orders an operator "
                                "must act on (`keap-orders failed` lists them).", value=gauges.audit_reports)
        yield GaugeMetricFamily(f"{PREFIX}_audits_due", "Orders with an uncertain write waiting for their audit.",
                                value=gauges.audits_due)
        yield GaugeMetricFamily(f"{PREFIX}_redis_losses", "Times Redis was found to have lost acknowledged writes.",
                                value=gauges.redis_losses)


def registry(directory: str, ledger: Ledger | None, queues: Iterable[str]):
    """The scrape registry: every process's files under `directory` summed, plus the ledger's gauges (unless no
    ledger is given: a sidecar of one worker pod, when one other endpoint serves them)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    found = CollectorRegistry()
    if directory:
        MultiProcessCollector(found, path=directory)
    if ledger is not None:
        found.register(LedgerCollector(ledger, queues))
    return found


def serve(found, host: str, port: int):
    """Serve `found` on http://host:port/metrics in a background thread; returns (server, thread)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=found)
