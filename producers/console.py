"""What an operator reads: one order's state in words and times, and the orders that are not moving (`stuck`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from worker.ledger import OrderState, Ledger


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
    alive = ledger.redis.exists(ledger.lease_key(f"order:{state.external_id}"))
    if state.status == "running":
        return "a worker is on it (slow Keap?)" if alive else "its worker died; the keeper sends it again"
    return (f"queued; no worker has started it (is a worker consuming the {state.lane} lane?); "
            f"re-sent {state.redrives} time(s)")
