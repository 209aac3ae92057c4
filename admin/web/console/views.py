"""What the console's pages show, read from indexes only: status sets and their counts, the counts by lane, the watch
and done sorted sets by score with a limit, one order's hash, the search indexes (email digest, Keap ids), the failed
set, the jobs index; never every order."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from admin.console import FailedFilter, failed_orders, find_orders
from worker import pipeline
from worker.app import app as celery_app
from worker.context import NoCredential, throttle
from worker.ledger import FailedRow, Ledger, OrderState
from worker.settings import Settings

LIST_LIMIT = 100  # rows a list page shows at most (counts are exact, lists are the first this many)


def overview(ledger: Ledger, settings: Settings) -> dict:
    """Counts by status and by lane and status, messages waiting per lane, throughput, the shared limits, who is
    alive."""
    queues = {"live": settings.live_queue, "backfill": settings.backfill_queue}
    gauges = ledger.gauges(queues.values())
    try:
        limits, limits_error = throttle(settings, ledger.redis).snapshot(), None
    except NoCredential as exc:
        limits, limits_error = [], str(exc)
    by_lane = ledger.by_lane()
    return {"orders": gauges.orders, "lanes": {lane: gauges.queues[q] for lane, q in queues.items()},
            "by_lane": {lane: by_lane.get(lane, dict.fromkeys(gauges.orders, 0)) for lane in
                        dict.fromkeys([*queues, *sorted(by_lane)])},
            "overdue": gauges.overdue, "throughput": {label: ledger.finished_since(seconds) for label, seconds in
                                                      (("last minute", 60), ("last hour", 3600), ("last day", 86400))},
            "limits": limits, "limits_error": limits_error, "reauth": ledger.held_count("reauth"),
            **alive(settings)}


_ALIVE: dict[str, tuple[float, dict]] = {}  # the last broadcast's answer per broker, and when it came
ALIVE_SECONDS = 10.0


def alive(settings: Settings, timeout: float = 0.5) -> dict:
    """Workers and keepers that answer a Celery broadcast within `timeout`, by the queues they consume. The
    broadcast waits the whole timeout, so its answer is kept for ALIVE_SECONDS (a page every second costs none)."""
    key = f"{settings.redis_url} {settings.live_queue} {settings.keeper_queue}"
    last = _ALIVE.get(key)
    if last and time.monotonic() - last[0] < ALIVE_SECONDS:
        return last[1]
    try:
        answers = celery_app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001 - the broker is away: nobody answers, which the page says
        answers = {}
    consumes = {name: {q["name"] for q in queues} for name, queues in answers.items()}
    found = {"workers": sorted(n for n, q in consumes.items() if q & {settings.live_queue, settings.backfill_queue}),
            "keepers": sorted(n for n, q in consumes.items() if settings.keeper_queue in q)}
    _ALIVE[key] = (time.monotonic(), found)
    return found


@dataclass
class Search:
    found: list[str] = field(default_factory=list)
    note: str | None = None
    how: dict[str, str] = field(default_factory=dict)  # per order found: how it matched (external id, email, ...)
    statuses: dict[str, str | None] = field(default_factory=dict)


def search(ledger: Ledger, settings: Settings, query: str) -> Search:
    """An order as the operator knows it: its external id, a store number (`#1001`, `1001`) under each store's id
    prefix, a customer's email, or a Keap order or contact id (`admin.console.find_orders`: indexes only)."""
    if not query.strip():
        return Search(note="type an order's external id (#1001, shopify:1001), a customer's email or a Keap order "
                           "or contact id")
    found = find_orders(ledger, settings, query)
    if not found.ids:
        return Search(note=f"no order in the ledger for {found.looked_for} (orders compacted by retention are "
                           "found by their external id only)")
    shown = found.ids[:LIST_LIMIT]
    more = f"{len(found.ids):,} orders match; the first {LIST_LIMIT} are shown" if len(found.ids) > LIST_LIMIT else None
    return Search(shown, more, how=found.matches, statuses=ledger.statuses(shown) if len(shown) > 1 else {})


@dataclass
class Step:
    name: str
    state: str  # done, current, failed, waiting, pending, skipped
    detail: str = ""


def timeline(state: OrderState) -> list[Step]:
    """Each step of the pipeline and where the order is: the ledger keeps the current (or failed) step, its
    attempts and error, and the Keap ids written; steps before it are done, each with when it finished, how long it
    took and its attempts (kept since the step stamps; older orders show none)."""
    names = list(pipeline.STEP_NAMES)
    at = state.error_step if state.status == "failed" else state.step
    index = names.index(at) if at in names else (len(names) if state.status == "done" else 0)
    steps = []
    since, tries = state.created_at, 0  # the end of the step before, and the attempts by then
    for i, name in enumerate(names):
        if state.status == "done" or i < index:
            detail = ""
            if name in state.finished:
                when, attempts = state.finished[name]
                took = f", took {when - since:.1f} s" if since and when >= since else ""
                detail = (f"finished {datetime.fromtimestamp(when, timezone.utc):%Y-%m-%d %H:%M:%S} UTC{took}, "
                          f"{max(attempts - tries, 1)} attempt(s)")
                since, tries = when, attempts
            steps.append(Step(name, "done", detail))
        elif i > index:
            steps.append(Step(name, "cancelled" if state.status == "cancelled" else "pending"))
        elif state.status == "failed":
            steps.append(Step(name, "failed", f"{state.error_kind}: {state.error}"))
        elif state.status == "waiting":
            steps.append(Step(name, "waiting", state.parked_reason or ""))
        else:
            steps.append(Step(name, state.status, f"attempt {state.attempts}" if state.attempts else ""))
    return steps


_KEAP_PAGES = {"contact_id": "/Contact/manageContact.jsp?view=edit&ID={}", "order_id": "/Job/manageJob.jsp?view=edit&ID={}"}


def keap_ids(state: OrderState, app_url: str) -> list[tuple[str, str, str | None]]:
    """(what, id, link into the Keap app or None) for each id the order wrote."""
    base = app_url.rstrip("/")
    return [(what, value, base + _KEAP_PAGES[what].format(value) if base and what in _KEAP_PAGES else None)
            for what, value in sorted(state.results.items())]


@dataclass
class Group:
    key: str  # a short digest of (step, kind, reason), for links
    step: str
    kind: str
    reason: str
    rows: list[FailedRow]


def failed_groups(ledger: Ledger) -> tuple[list[Group], int]:
    """Failed orders grouped by step, error kind and reason (the error with the order's own id taken out), the
    biggest group first. Reads the failed set (only failed orders), 500 at a time."""
    rows, total = failed_orders(ledger, FailedFilter())
    groups: dict[tuple, Group] = {}
    for row in rows:
        reason = (row.error or "-").replace(row.external_id, "<order>")
        key = (row.step, row.kind, reason)
        if key not in groups:
            digest = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
            groups[key] = Group(digest, row.step, row.kind, reason, [])
        groups[key].rows.append(row)
    return sorted(groups.values(), key=lambda g: (-len(g.rows), g.step)), total


@dataclass
class Waiting:
    external_id: str
    status: str
    step: str
    until: float | None
    why: str


def not_moving(ledger: Ledger, limit: int = LIST_LIMIT) -> dict:
    """Stuck: active orders the keeper should have looked at over a minute ago (the watch set by score, a page
    at most); parked: waiting orders with their time and reason (a page of the waiting set); held for re-auth."""
    now = ledger.now()
    stuck_ids = ledger.overdue_ids(now - 60, limit)
    parked_ids = ledger.ids_with_status("waiting", limit)
    states = {ext: ledger.get(ext) for ext in dict.fromkeys(stuck_ids + parked_ids)}
    stuck = [Waiting(ext, s.status, s.step or "-", s.updated_at,
                     "a worker is on it (slow Keap?)" if s.status == "running" and ledger.lease_held(f"order:{ext}")
                     else "the keeper has not looked at it for over a minute: is the keeper running?")
             for ext in stuck_ids if (s := states[ext])]
    parked = sorted((Waiting(ext, s.status, s.step or "-", s.parked_until, s.parked_reason or "-")
                     for ext in parked_ids if (s := states[ext]) and s.status == "waiting"),
                    key=lambda w: w.until or 0)
    return {"stuck": stuck, "parked": parked, "waiting_total": ledger.count("waiting"),
            "overdue_total": ledger.gauges().overdue, "reauth": ledger.held_count("reauth")}
