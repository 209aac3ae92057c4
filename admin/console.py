"""What an operator reads: the orders that match what they typed (`find_orders`: an external id, a store's number, an
email, a Keap id), one order's state in words and times, the orders that are not moving (`stuck`), failed orders by
step, reason, time and lane (`failed`, `retry --failed`), and an order's record for support (`export`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from worker.ledger import FailedRow, Ledger, OrderState
from worker.settings import Settings


@dataclass
class Found:
    """The orders that match what an operator typed, each with how it matched (`external id`, `customer email`,
    `Keap order id`, `Keap contact id`), and what was looked for, in words (never an email)."""

    matches: dict[str, str]
    looked_for: str

    @property
    def ids(self) -> list[str]:
        return list(self.matches)


def find_orders(ledger: Ledger, settings: Settings, query: str, *, wide: bool = True) -> Found:
    """The orders an operator means, from indexes only (a few key reads, never a scan): the external id as stored;
    a store's number (`#1001`, `1001`) under the id prefixes (SHOPIFY_ID_PREFIX, WOOCOMMERCE_ID_PREFIX); with an
    `@`, the orders of that customer email; a plain number that is no external id, the order of that Keap order id
    and the orders of that Keap contact id (these two unless `wide` is off)."""
    query = query.strip()
    number = query.lstrip("#").strip()
    candidates = [query]
    if number and ":" not in number and "@" not in number:
        candidates += [number] + [prefix + number for prefix in (settings.shopify_id_prefix,
                                                                 settings.woocommerce_id_prefix) if prefix]
    candidates = list(dict.fromkeys(candidates))
    matches = {ext: "external id" for ext, status in ledger.statuses(candidates).items() if status}
    looked_for = "that email" if "@" in query else ", ".join(candidates)
    if wide and "@" in query:
        matches.update((ext, "customer email") for ext in ledger.by_email(query) if ext not in matches)
    elif wide and not matches and query.isdigit():
        keap = ledger.by_keap_id(query)
        matches.update((ext, "Keap order id") for ext in keap["order"])
        matches.update((ext, "Keap contact id") for ext in keap["contact"] if ext not in matches)
        looked_for += f", Keap order or contact id {query}"
    return Found(matches, looked_for)


def when(moment: float | None, now: float) -> str:
    """"2026-11-26 23:58:01 UTC (5m ago)" / "(in 2m10s)"; "-" for no time."""
    if moment is None:
        return "-"
    stamp = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = moment - now
    return f"{stamp} ({'in ' + span(delta) if delta > 0 else span(-delta) + ' ago'})"


def span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def describe(state: OrderState, now: float) -> str:
    """`keap-orders status ID` in words: never the customer's data (the message is not shown)."""
    status = state.status
    if state.status == "waiting":
        status += f" until {when(state.parked_until, now)}: {state.parked_reason}"
    rows = [
        ("status", status),
        ("step", state.step or "-"),
        ("pending step", f"{state.single} (sent on its own)" if state.single else None),
        ("lane", state.lane),
        ("attempts", f"{state.attempts} (re-sent by the keeper {state.resends} time(s), {state.redrives} since the "
                     "last progress)"),
        ("created", when(state.created_at, now)),
        ("updated", when(state.updated_at, now)),
        ("done", when(state.done_at, now) if state.done_at else None),
        ("compacted", f"{when(state.compacted_at, now)}: the order's data is gone, its Keap ids are kept"
         if state.compacted_at else None),
        ("failed at", f"{state.error_step} ({state.error_kind})" if state.error_step else None),
        ("error", state.error),
        ("keap ids", "  ".join(f"{what}={value}" for what, value in sorted(state.results.items())) or "-"),
        ("unanswered", ", ".join(f"{what} (sent {when(intent.at, now)}, {intent.checks} lookup(s) since)"
                                 for what, intent in sorted(state.intents.items())) or None),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join([f"order {state.external_id}"] + [f"  {name:<{width}}  {value}" for name, value in rows
                                                       if value is not None])


@dataclass
class Stuck:
    external_id: str
    status: str
    step: str
    still_for: float  # seconds since the order last changed
    why: str


def stuck(ledger: Ledger, older_than: float, limit: int = 100) -> list[Stuck]:
    """Active orders that have not changed for `older_than` seconds, oldest first, with what is known of why.

    Reads the active orders only (the keeper's watch set), never the whole ledger."""
    now = ledger.now()
    found = []
    for ext, next_look in ledger.iter_watched():
        state = ledger.get(ext)
        if state is None or state.status not in ("queued", "running", "waiting") and not state.single:
            continue
        still = now - (state.updated_at or now)
        if still < older_than:
            continue
        found.append(Stuck(ext, state.status, state.single or state.step or "-", still,
                           _why(ledger, state, next_look, now)))
    return sorted(found, key=lambda row: -row.still_for)[:limit]


def _why(ledger: Ledger, state: OrderState, next_look: float, now: float) -> str:
    if state.status == "waiting":
        return f"parked until {when(state.parked_until, now)}: {state.parked_reason}"
    if next_look < now - 60:
        return (f"the keeper should have looked at it {span(now - next_look)} ago: is the keeper running "
                "(Procfile `keeper`)?")
    if state.intents:
        return f"reconciling an unanswered write ({', '.join(sorted(state.intents))})"
    alive = ledger.lease_held(f"order:{state.external_id}")
    if state.status == "running":
        return "a worker is on it (slow Keap?)" if alive else "its worker died; the keeper sends it again"
    return (f"queued; no worker has started it (is a worker consuming the {state.lane} lane?); "
            f"re-sent {state.redrives} time(s)")


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def moment(text: str, now: float) -> float:
    """A time an operator types: "90m", "2h", "3d" (ago), or an ISO date / date and time (UTC unless it says)."""
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        return now - float(ago.group(1)) * _UNIT[ago.group(2)]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r}: use a duration ago such as 90m, 2h, 3d, or a date/time such as 2026-11-26 or "
                         "2026-11-26T14:00 (UTC)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


@dataclass(frozen=True)
class FailedFilter:
    """Which failed orders: at a step, for a reason (an error kind, or words of the error), failed (last changed)
    within [since, until], on a lane. None matches anything."""

    step: str | None = None
    reason: str | None = None
    since: float | None = None
    until: float | None = None
    lane: str | None = None

    def matches(self, row: FailedRow) -> bool:
        reason = (self.reason or "").lower()
        return ((self.step is None or row.step == self.step) and (self.lane is None or row.lane == self.lane)
                and (not reason or reason == row.kind.lower() or reason in row.error.lower())
                and (self.since is None or row.failed_at >= self.since)
                and (self.until is None or row.failed_at <= self.until))


def failed_orders(ledger: Ledger, which: FailedFilter, limit: int | None = None) -> tuple[list[FailedRow], int]:
    """The failed orders that match, oldest failure first (at most `limit`), and how many failed orders there are.
    Reads the failed orders only (their set), 500 at a time."""
    rows = [row for row in ledger.failed_rows() if which.matches(row)]
    rows.sort(key=lambda row: (row.failed_at, row.external_id))
    return (rows if limit is None else rows[:limit]), ledger.count("failed")


def export(state: OrderState, now: float, *, with_message: bool = False) -> dict[str, Any]:
    """An order's ledger record for support: status, steps, errors, Keap ids, unanswered writes, times in UTC (and
    epoch seconds). The stored message (the customer's data) only when asked for."""
    record = state.as_dict()
    for name in ("created_at", "updated_at", "done_at", "compacted_at", "parked_until"):
        if record.get(name) is not None:
            record[name] = {"utc": when(record[name], now).split(" (")[0], "epoch": record[name]}
    record["pending_writes"] = {what: {"sent_at": when(intent.at, now).split(" (")[0], "lookups": intent.checks}
                                for what, intent in sorted(state.intents.items())}
    if with_message:
        record["message"] = state.message
    return record
