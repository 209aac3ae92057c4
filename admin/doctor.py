"""`keap-orders doctor`: read-only checks of a Keap account (and a file) before a backfill.

The credential works and which limits Keap applies to it; the external-id custom fields exist or can be created;
with a file, every order is valid and every SKU, plan and payment method is one Keap has (the same checks as
`backfill --dry-run`, which shares this code); and the calls and days the file will take at the current limits.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from producers import backfill
from producers.sources.base import ReadOptions
from worker.keap import CredentialRevoked, KeapAuthError, KeapError, RateLimits
from worker.settings import Settings
from worker.steps.base import StepContext

OK, WARN, FAIL = "ok", "warning", "FAIL"


@dataclass
class Report:
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (verdict, check, detail)

    def add(self, verdict: str, check: str, detail: str) -> None:
        self.lines.append((verdict, check, detail))

    @property
    def failed(self) -> bool:
        return any(verdict == FAIL for verdict, _, _ in self.lines)


def check_account(ctx: StepContext, settings: Settings, report: Report, scopes: list[dict]) -> bool:
    """The credential and the custom fields; False when Keap cannot be used at all (nothing else is checked).
    `scopes`: the shared throttle's state (`Throttle.snapshot()`), whose limits the workers keep to."""
    kind = ("an API key (service account key / personal access token)" if settings.keap_api_key else
            f"OAuth client {settings.keap_client_id}" if settings.keap_client_id else "a static OAuth access token")
    try:
        model = ctx.keap.orders.get_model()
    except CredentialRevoked as exc:
        report.add(FAIL, "credential", f"{kind}: {exc}")
        return False
    except KeapAuthError as exc:
        report.add(FAIL, "credential", f"Keap refused {kind} (HTTP {exc.status or '?'}); check the credential and its "
                   "permissions")
        return False
    except KeapError as exc:
        report.add(FAIL, "credential", f"Keap did not answer as expected ({exc}); check KEAP_BASE_URL, try again")
        return False
    report.add(OK, "credential", f"{kind} works against {settings.keap_base_url}")
    report.add(OK if ctx.keap.last_limits else WARN, "limits", _limits(ctx.keap.last_limits, scopes))
    _field(report, "order", model, ctx.external_id_label)
    _field(report, "subscription", ctx.keap.subscriptions.get_model(), ctx.external_id_label)
    return True


def check_file(path: Path, fmt: str | None, ctx: StepContext, settings: Settings, options: ReadOptions,
               report: Report, out: TextIO) -> None:
    """Every row valid and every SKU, plan and payment method known to Keap: the dry run's checks."""
    ready, problems = backfill.dry_run(path, fmt, ctx, settings.payment_types, out=out, options=options)
    report.add(FAIL if problems else OK, "file",
               f"{ready} order(s) ready, {problems} with problems (invalid rows and orders Keap would refuse, listed "
               f"above by line; the payment methods are "
               f"checked against MANUAL_PAYMENT_TYPES and, for store exports, PAYMENT_METHOD_MAP)")


def _field(report: Report, record: str, model: dict, label: str) -> None:
    found = next((f for f in model.get("custom_fields") or [] if f.get("label") == label), None)
    if found:
        report.add(OK, f"{record} external-id field", f"{label!r} exists (filter name {found.get('field_name')})")
    else:
        report.add(OK, f"{record} external-id field",
                   f"{label!r} does not exist yet; the first {record} will create it (a TEXT custom field)")


def keap_says(said: dict | None) -> str:
    """What Keap's last x-keap-* headers said (a RateLimits as a dict), in one phrase."""
    if not said:
        return "Keap sent no x-keap-* limit headers"
    count = lambda n: f"{n:,}" if n is not None else "?"  # noqa: E731
    parts = []
    if said.get("throttle_limit") is not None:
        parts.append(f"{count(said.get('throttle_available'))} of {count(said['throttle_limit'])} calls per "
                     f"{said.get('throttle_window_seconds') or 60} s left")
    if said.get("quota_limit") is not None:
        parts.append(f"{count(said.get('quota_available'))} of {count(said['quota_limit'])} per day left")
    if said.get("tenant_throttle_limit") is not None or said.get("tenant_quota_limit") is not None:
        parts.append(f"account: {count(said.get('tenant_throttle_limit'))} per minute, "
                     f"{count(said.get('tenant_quota_limit'))} per day")
    if said.get("spike_limit") is not None:
        parts.append(f"spike arrest {said['spike_limit']:g}/s")
    return "Keap says " + "; ".join(parts)


def limits_lines(scopes: list[dict]) -> list[str]:
    """The shared limits as `quota` and `doctor` show them: what the workers keep to, per scope, today's use,
    and (once) what Keap last said."""
    lines = []
    for scope in scopes:
        day, window = scope["day"], scope["window"]
        rate = f", {scope['calls_per_second']:.2f} calls/s" if scope["calls_per_second"] else ""
        lines.append(f"{scope['kind']} {scope['key'].rsplit(':', 1)[-1]} ({scope['limits'] or 'off'}){rate}:")
        if window:
            lines.append(f"  last {window['seconds']} s: {window['used']:,} of {window['limit']:,} calls")
        lines.append(f"  today (UTC): {day['total']:,}" + (f" of {day['limit']:,}" if day["limit"] else "")
                     + f" calls (live {day['live']:,}, backfill {day['backfill']:,}"
                     + (f" of its {scope['backfill_allowed']:,})" if scope["backfill_allowed"] is not None else ")"))
        if scope["paused_for"]:
            lines.append(f"  paused for {scope['paused_for']:.1f} s after a 429")
    said = next((s for s in scopes if s["keap_said"]), None)
    lines.append(f"{keap_says(said['keap_said'])} ({said['keap_said_ago']:.0f} s ago, HTTP "
                 f"{said['keap_said'].get('status')})" if said else
                 "Keap has said nothing yet (no call since the counters were last kept)")
    return lines


def _limits(limits: RateLimits | None, scopes: list[dict]) -> str:
    """Keap's word and what the workers keep to (the rate the plan below uses), in one line: they must agree."""
    said = keap_says(asdict(limits) if limits else None)
    kept = "; ".join(f"{s['kind']} {s['limits'] or 'off'}" for s in scopes)
    rate = min((s["calls_per_second"] for s in scopes if s["calls_per_second"]), default=None)
    pace = f" ({rate:.2f} calls/s)" if rate else ""
    return f"{said}; the workers keep to {kept}{pace} (RATE_LIMITS, ACCOUNT_RATE_LIMITS){_agreement(scopes, limits)}"


def _agreement(scopes: list[dict], limits: RateLimits | None) -> str:
    """Whether the configured per-minute limit is above what Keap says (429s ahead) or below it (room left)."""
    mine = next((s["window"]["limit"] for s in scopes if s["kind"] == "credential" and s["window"]), None)
    theirs = limits.throttle_limit if limits else None
    if mine is None or theirs is None or mine == theirs:
        return ""
    return (f"; above Keap's {theirs:,}: set RATE_LIMITS to Keap's figures" if mine > theirs else
            f"; below Keap's {theirs:,}, as configured")
