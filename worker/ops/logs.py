"""The worker's log lines: one JSON object per line when stderr is not a terminal (python-json-logger), readable
text on a terminal, every line and traceback scrubbed of customer data and secrets (worker/scrub.py).

`configure` runs in Celery's `setup_logging` signal (worker/app.py), never at import; `step_outcome` writes the one
line per step run that says what happened (order id, step, attempt, lane, outcome, Keap calls, duration).
"""
from __future__ import annotations

import logging
import sys
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from worker import scrub

log = logging.getLogger("keap_orders.steps")

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ScrubFilter(logging.Filter):
    """Replaces a record's message by its scrubbed text (the arguments may hold anything a caller passed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub.text(record.getMessage()), None
        return True


class JsonLines(JsonFormatter):
    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return scrub.text(super().formatException(ei))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return scrub.data(log_data)


class TextLines(logging.Formatter):
    def formatException(self, ei) -> str:  # noqa: N802
        return scrub.text(super().formatException(ei))


def configure(level: int | str = logging.INFO, fmt: str = "auto", stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's lines at `level` and up to `stream` (stderr) as JSON or text; returns the handler."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines("%(asctime)s %(levelname)s %(name)s %(message)s",
                                   rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
                         if as_json else TextLines(_TEXT))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # urllib3's DEBUG lines carry full URLs, and a Keap filter in a URL can hold a customer's email.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger("urllib3").level))
    return handler


def step_outcome(external_id: str, step: str, *, attempt: int, lane: str, outcome: str, keap_calls: int,
                 seconds: float, error_kind: str = "", reason: str = "") -> None:
    """The line of one step run. A failure is a warning here (Sentry takes bugs from the task's exception and
    refusals from worker/sentry.py, so this line is never an error event). `reason` has no values (scrub.reason)."""
    fields = {"order_id": external_id, "step": step, "attempt": attempt, "lane": lane, "outcome": outcome,
              "keap_calls": keap_calls, "duration_ms": round(seconds * 1000)}
    text = (f"order {external_id}: {step} {outcome} (attempt {attempt}, {lane or '-'} lane, {keap_calls} Keap "
            f"call(s), {fields['duration_ms']} ms)")
    if error_kind:
        fields.update(error_kind=error_kind, reason=reason)
        text += f": {error_kind}: {reason}"
    log.log(logging.WARNING if outcome == "failed" else logging.INFO, "%s", text, extra=fields)
