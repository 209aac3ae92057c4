"""`keap-orders doctor`: read-only checks of a Keap account (and a file) before a backfill.

The credential works and which limits Keap applies to it; the external-id custom fields exist or can be created;
with a file, every order is valid and every SKU, plan and payment method is one Keap has (the same checks as
`backfill --dry-run`, which shares this code); and the calls and days the file will take at the current limits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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


def check_account(ctx: StepContext, settings: Settings, report: Report) -> bool:
    """The credential and the custom fields; False when Keap cannot be used at all (nothing else is checked)."""
    kind = ("an API key (service account key / personal access token)" if settings.keap_api_key else
            f"OAuth client {settings.keap_client_id}" if settings.keap_client_id else "a static OAuth access token")
    try:
        model = ctx.keap.orders.get_model()
    except CredentialRevoked as exc:
        report.add(FAIL, "credential", f"{kind}: {exc}; run `keap-orders auth login`")
        return False
    except KeapAuthError as exc:
        report.add(FAIL, "credential", f"Keap refused {kind} ({exc}); check the credential and its permissions")
        return False
    except KeapError as exc:
        report.add(FAIL, "credential", f"Keap did not answer as expected ({exc}); check KEAP_BASE_URL, try again")
        return False
    report.add(OK, "credential", f"{kind} works against {settings.keap_base_url}")
    report.add(OK if ctx.keap.last_limits else WARN, "limits", _limits(ctx.keap.last_limits))
    _field(report, "order", model, ctx.external_id_label)
    _field(report, "subscription", ctx.keap.subscriptions.get_model(), ctx.external_id_label)
    return True


def check_file(path: Path, fmt: str | None, ctx: StepContext, settings: Settings, options: ReadOptions,
               report: Report, out: TextIO) -> None:
    """Every row valid and every SKU, plan and payment method known to Keap: the dry run's checks."""
    ready, problems = backfill.dry_run(path, fmt, ctx, settings.payment_types, out=out, options=options)
    report.add(FAIL if problems else OK, "file",
               f"{ready} order(s) ready, {problems} with problems (listed above by line; the payment methods are "
               f"checked against MANUAL_PAYMENT_TYPES and, for store exports, PAYMENT_METHOD_MAP)")


def _field(report: Report, record: str, model: dict, label: str) -> None:
    found = next((f for f in model.get("custom_fields") or [] if f.get("label") == label), None)
    if found:
        report.add(OK, f"{record} external-id field", f"{label!r} exists (filter name {found.get('field_name')})")
    else:
        report.add(OK, f"{record} external-id field",
                   f"{label!r} does not exist yet; the first {record} will create it (a TEXT custom field)")


def _limits(limits: RateLimits | None) -> str:
    if limits is None:
        return "Keap sent no x-keap-* limit headers; the configured RATE_LIMITS apply"
    parts = []
    if limits.throttle_limit is not None:
        parts.append(f"{limits.throttle_limit:,} calls per {limits.throttle_window_seconds or 60}s "
                     f"({limits.throttle_available if limits.throttle_available is not None else '?'} left)")
    if limits.quota_limit is not None:
        parts.append(f"{limits.quota_limit:,} per day ({limits.quota_available:,} left today)"
                     if limits.quota_available is not None else f"{limits.quota_limit:,} per day")
    if limits.tenant_throttle_limit is not None or limits.tenant_quota_limit is not None:
        count = lambda n: f"{n:,}" if n is not None else "?"  # noqa: E731
        parts.append(f"account: {count(limits.tenant_throttle_limit)} per minute, "
                     f"{count(limits.tenant_quota_limit)} per day")
    if limits.spike_limit is not None:
        parts.append(f"spike arrest {limits.spike_limit:g}/s")
    return "Keap applies " + "; ".join(parts)
