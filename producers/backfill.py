"""Backfill a store export: stream the file, validate each order, keep a window of orders in flight.

Constant memory for any file size: rows are read one at a time and at most `window` orders are queued or
running at once, so Redis holds a bounded number of messages even for a million-order file. Re-running the
same file skips what the ledger says is done, resumes failed orders at their failed step and waits for what is
still in flight; a row whose content differs from what the ledger holds for its external id is a conflict.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from producers.enqueue import OrderConflict, Producer
from producers.sources import count_orders, detect_format, read_file
from producers.sources.base import ReadOptions
from worker.ledger import ACTIVE
from worker.steps import resolve
from worker.steps.base import StepContext

log = logging.getLogger(__name__)

# The keeper looks at every due order every few seconds; one overdue by minutes means no keeper is running.
STALL_GRACE_SECONDS = 120.0
STALL_CHECK_SECONDS = 10.0


@dataclass
class Progress:
    total: int = 0  # orders in the file (valid or not), from a counting pass
    invalid: int = 0
    done: int = 0  # including those already done before this run
    skipped: int = 0  # done before this run: nothing sent
    failed: int = 0
    cancelled: int = 0  # cancelled by an operator: final, never sent again
    sent: int = 0  # orders sent to the workers by this run
    resumed: int = 0  # failed before this run, resumed at their failed step
    conflicts: int = 0  # the ledger holds other content for the row's external id: reported, not sent
    in_flight: set[str] = field(default_factory=set)
    stalled: set[str] = field(default_factory=set)  # in flight, but nothing has moved them for too long
    started: float = field(default_factory=time.monotonic)
    finished_this_run: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.total - self.invalid

    def summary(self, waited: bool) -> str:
        lines = [f"orders in file: {self.total}", f"invalid rows:   {self.invalid}",
                 f"done:           {self.done} ({self.skipped} already done before this run)",
                 f"failed:         {self.failed}"]
        if self.resumed:
            lines.append(f"resumed:        {self.resumed} (failed before this run)")
        if self.conflicts:
            lines.append(f"conflicts:      {self.conflicts} (other content than the ledger holds; not sent)")
        if self.cancelled:
            lines.append(f"cancelled:      {self.cancelled} (final; not sent)")
        if self.stalled:
            lines.append(f"stalled:        {len(self.stalled)} (see `keap-orders stuck`)")
        if not waited:
            lines.append(f"in flight:      {len(self.in_flight)} (follow with `keap-orders status ID`)")
        return "\n".join(lines)

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
    def __init__(self, producer: Producer, *, window: int = 200, out: TextIO | None = None,
                 report: TextIO | None = None, poll_seconds: float = 0.5):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.producer = producer
        self.ledger = producer.ledger
        self.window = window
        self.out = out or sys.stderr
        self.report = report
        self.poll_seconds = poll_seconds
        self._tty = self.out.isatty()
        self._last_draw = 0.0
        self._last_stall_check = 0.0

    def run(self, path: Path, fmt: str | None = None, *, wait: bool = False,
            options: ReadOptions | None = None) -> Progress:
        options = options or ReadOptions.from_settings()
        fmt = detect_format(path, fmt, options)
        # Kept on the job, so a caller interrupted (Ctrl-C) can still say what was sent.
        self.progress = progress = Progress(total=count_orders(path, fmt, options))
        for row in read_file(path, fmt, options):
            if row.error is not None:
                progress.invalid += 1
                self._emit(f"line {row.line}: {row.error}")
                continue
            ext = row.order.external_id
            status = self.ledger.statuses([ext])[ext]
            try:
                if status not in ACTIVE + ("done", "cancelled"):
                    sent = self.producer.enqueue_order(row.order, "backfill", source=f"backfill {path.name}")
                    progress.resumed += status == "failed" and sent.sent
                    status, progress.sent = sent.status, progress.sent + sent.sent
                else:
                    self.producer.check_same(row.order, f"backfill {path.name}")
            except OrderConflict as exc:
                progress.conflicts += 1
                self._emit(f"line {row.line}: {exc}")
                continue
            if status == "done":
                progress.done += 1
                progress.skipped += 1
            elif status == "cancelled":
                progress.cancelled += 1
                self._emit(f"order {ext}: cancelled; a cancelled order is final and is not sent again")
            else:
                progress.in_flight.add(ext)  # sent now, or by an earlier run that was interrupted
            while len(progress.in_flight) >= self.window:
                self._poll(progress)
            self._draw(progress)
        while wait and progress.in_flight and progress.stalled != progress.in_flight:
            self._poll(progress)
        self._draw(progress, final=True)
        return progress

    def _poll(self, progress: Progress) -> None:
        changed = False
        self._check_stalled(progress)
        for ext, status in self.ledger.statuses(progress.in_flight).items():
            if status in ACTIVE:
                continue
            progress.stalled.discard(ext)
            progress.in_flight.discard(ext)
            progress.finished_this_run += 1
            changed = True
            if status == "done":
                progress.done += 1
            elif status == "cancelled":
                progress.cancelled += 1
            else:
                progress.failed += 1
                state = self.ledger.get(ext)
                reason = (state.error if state else None) or status or "missing from the ledger"
                progress.failures.append((ext, reason))
                self._emit(f"order {ext}: {status}: {reason}")
        if not changed:
            self._draw(progress)
            time.sleep(self.poll_seconds)

    def _check_stalled(self, progress: Progress) -> None:
        """Orders the keeper should have looked at long ago: no keeper runs, so nothing will move them."""
        now = time.monotonic()
        if now - self._last_stall_check < STALL_CHECK_SECONDS:
            return
        self._last_stall_check = now
        overdue = set(self.ledger.overdue(progress.in_flight, STALL_GRACE_SECONDS))
        new = overdue - progress.stalled
        progress.stalled = overdue
        if new:
            self._emit(f"warning: {len(overdue)} order(s) stalled: no keeper has looked at them for over "
                       f"{STALL_GRACE_SECONDS:.0f}s (is the keeper running? Procfile `keeper`); see `keap-orders "
                       f"stuck`; e.g. {', '.join(sorted(new)[:5])}")

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


def dry_run(path: Path, fmt: str | None, ctx: StepContext, payment_types: set[str],
            out: TextIO | None = None, options: ReadOptions | None = None) -> tuple[int, int]:
    """Validate every order and find what the steps would refuse (SKUs, plans, payment methods) through the
    same resolution code the worker runs, writing nothing to Keap. Returns (orders ready, orders with problems)."""
    out = out or sys.stderr
    options = options or ReadOptions.from_settings()
    fmt = detect_format(path, fmt, options)
    memo: dict[str, dict | None] = {}
    ok = bad = 0
    for row in read_file(path, fmt, options):
        problems = [str(row.error)] if row.error else resolve.problems(ctx, row.order, payment_types, memo)
        for problem in problems:
            out.write(f"line {row.line}: {problem}\n")
        bad += bool(problems)
        ok += not problems
    return ok, bad
