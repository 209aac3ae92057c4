"""Backfill a store export: stream the file, validate each order, keep a window of orders in flight.

Constant memory for any file size: rows are read one at a time and at most `window` orders are queued or
running at once, so Redis holds a bounded number of messages even for a million-order file. Re-running the
same file skips what the ledger says is done and waits for what is still in flight.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

from producers.enqueue import enqueue_order
from producers.sources import READERS, count_orders, detect_format
from producers.sources.base import ReadOptions
from worker.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class Progress:
    total: int = 0  # orders in the file (valid or not), from a counting pass
    invalid: int = 0
    done: int = 0  # including those already done before this run
    skipped: int = 0  # done before this run: nothing sent
    failed: int = 0
    sent: int = 0  # orders sent to the workers by this run
    in_flight: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    finished_this_run: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.total - self.invalid

    def line(self) -> str:
        handled = self.done + self.failed + self.invalid
        elapsed = time.monotonic() - self.started
        rate = self.finished_this_run / elapsed if elapsed > 0 else 0.0
        remaining = max(self.total - handled, 0)
        eta = _duration(remaining / rate) if rate > 0 else "--:--"
        width = 24
        filled = int(width * handled / self.total) if self.total else width
        return (f"[{'#' * filled}{'.' * (width - filled)}] {handled}/{self.total} done {self.done} "
                f"failed {self.failed} invalid {self.invalid} in flight {len(self.in_flight)} "
                f"{rate:.1f}/s ETA {eta}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Backfill:
    def __init__(self, ledger: Ledger, *, window: int = 200, out: TextIO | None = None, report: TextIO | None = None,
                 poll_seconds: float = 0.5, enqueue: Callable = enqueue_order):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.ledger = ledger
        self.window = window
        self.out = out or sys.stderr
        self.report = report
        self.poll_seconds = poll_seconds
        self.enqueue = enqueue
        self._tty = self.out.isatty()
        self._last_draw = 0.0

    def run(self, path: Path, fmt: str | None = None, *, wait: bool = False,
            options: ReadOptions | None = None) -> Progress:
        options = options or ReadOptions.from_settings()
        fmt = detect_format(path, fmt, options)
        # Kept on the job, so a caller interrupted (Ctrl-C) can still say what was sent.
        self.progress = progress = Progress(total=count_orders(path, fmt, options))
        for row in READERS[fmt](path, options):
            if row.error is not None:
                progress.invalid += 1
                self._emit(f"line {row.line}: {row.error}")
                continue
            ext = row.order.external_id
            status = self.ledger.statuses([ext])[ext]
            if status == "done":
                progress.done += 1
                progress.skipped += 1
            elif status in ("queued", "running"):
                progress.in_flight.add(ext)  # sent by an earlier run that was interrupted
            else:
                self.enqueue(row.order, "backfill", ledger=self.ledger)
                progress.sent += 1
                progress.in_flight.add(ext)
            while len(progress.in_flight) >= self.window:
                self._poll(progress)
            self._draw(progress)
        while wait and progress.in_flight:
            self._poll(progress)
        self._draw(progress, final=True)
        return progress

    def _poll(self, progress: Progress) -> None:
        changed = False
        for ext, status in self.ledger.statuses(progress.in_flight).items():
            if status in ("queued", "running"):
                continue
            progress.in_flight.discard(ext)
            progress.finished_this_run += 1
            changed = True
            if status == "done":
                progress.done += 1
            else:
                progress.failed += 1
                state = self.ledger.get(ext)
                reason = (state.error if state else None) or status or "missing from the ledger"
                progress.failures.append((ext, reason))
                self._emit(f"order {ext}: {status}: {reason}")
        if not changed:
            self._draw(progress)
            time.sleep(self.poll_seconds)

    def _emit(self, message: str) -> None:
        if self._tty:
            self.out.write("\r\033[K")
        self.out.write(message + "\n")
        if self.report:
            self.report.write(message + "\n")
            self.report.flush()

    def _draw(self, progress: Progress, final: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            if final or now - self._last_draw > 0.2:
                self.out.write("\r\033[K" + progress.line() + ("\n" if final else ""))
                self.out.flush()
                self._last_draw = now
        elif final or now - self._last_draw > 5:
            # Not a terminal (a log file, CI): a plain line every few seconds instead of a redrawn bar.
            self.out.write(progress.line() + "\n")
            self.out.flush()
            self._last_draw = now


def dry_run(path: Path, fmt: str | None, keap, payment_types: set[str], out: TextIO | None = None,
            options: ReadOptions | None = None) -> tuple[int, int]:
    """Validate every order, resolve its SKUs and plans against Keap and check its payment methods against the
    account's manual payment types, writing nothing. Returns (orders ready, orders with problems)."""
    out = out or sys.stderr
    options = options or ReadOptions.from_settings()
    fmt = detect_format(path, fmt, options)
    known: dict[str, dict | None] = {}
    ok = bad = 0
    for row in READERS[fmt](path, options):
        problems = [str(row.error)] if row.error else list(_resolution_problems(row.order, keap, known, payment_types))
        for problem in problems:
            out.write(f"line {row.line}: {problem}\n")
        bad += bool(problems)
        ok += not problems
    return ok, bad


def _resolution_problems(order, keap, known: dict[str, dict | None], payment_types: set[str]) -> Iterator[str]:
    def product(sku: str) -> dict | None:
        if sku not in known:
            known[sku] = keap.products.find_by_sku(sku)
        return known[sku]

    for i, item in enumerate(order.items):
        if item.sku and product(item.sku) is None:
            yield f"order {order.external_id}: items[{i}].sku: SKU {item.sku!r} is not a product in Keap"
    for i, sub in enumerate(order.subscriptions):
        found = product(sub.sku)
        if found is None:
            yield f"order {order.external_id}: subscriptions[{i}].sku: SKU {sub.sku!r} is not a product in Keap"
        elif not any(p.get("billing_cycle") == sub.billing_cycle for p in found.get("subscription_plans") or []):
            yield (f"order {order.external_id}: subscriptions[{i}].billing_cycle: {sub.sku!r} has no "
                   f"{sub.billing_cycle} plan in Keap")
    for i, payment in enumerate(order.payments):
        if payment.method and payment.method not in payment_types:
            yield (f"order {order.external_id}: payments[{i}].method: {payment.method!r} is not one of the manual "
                   f"payment types {sorted(payment_types)}; add it in Keap (Ecommerce settings > Orders) and to "
                   f"MANUAL_PAYMENT_TYPES, or change the order")
