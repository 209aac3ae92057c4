"""What the ledger hands out: an order's state, a due order as the keeper sees it, a failed order's row, the gauges;
and the statuses an order moves through."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("queued", "running", "waiting", "done", "failed", "cancelled")
ACTIVE = ("queued", "running", "waiting")
FINAL = ("done", "failed", "cancelled")


@dataclass
class Intent:
    at: float  # Redis server time when the write was being sent (right before its bytes left)
    checks: int = 0  # lookups since that found nothing
    checked_by_operator: bool = False  # `retry --charges-checked`: written again if one more lookup misses it
    by: str = ""  # the lease token of the run that sent it


@dataclass
class OrderState:
    """A snapshot of one order's ledger entry."""

    external_id: str
    status: str
    lane: str = "live"
    step: str | None = None
    ticket: str | None = None
    single: str | None = None  # a step sent on its own for a done/failed order, not finished yet
    attempts: int = 0
    redrives: int = 0  # re-sent by the keeper since the last progress (bounded by MAX_REDRIVES)
    resends: int = 0  # re-sent by the keeper in all
    error: str | None = None
    error_step: str | None = None
    error_kind: str | None = None
    parked_until: float | None = None
    parked_reason: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    step_started_at: float | None = None
    done_at: float | None = None
    compacted_at: float | None = None  # retention dropped the message; the Keap ids stay (exactly once)
    audit_result: str | None = None  # what the audit after an uncertain write found (clean, deleted ..., reported)
    audit_report: str | None = None  # a finding an operator must act on
    message: dict[str, Any] | None = None
    results: dict[str, str] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)
    finished: dict[str, tuple[float, int]] = field(default_factory=dict)  # chain step -> (when, attempts so far)

    @classmethod
    def from_hash(cls, external_id: str, raw: dict[bytes, bytes]) -> OrderState:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        number = lambda name: float(data[name]) if data.get(name) else None  # noqa: E731
        return cls(
            external_id=external_id,
            status=data.get("status", "queued"),
            lane=data.get("lane", "live"),
            step=data.get("step") or None,
            ticket=data.get("ticket"),
            single=data.get("single"),
            attempts=int(data.get("attempts", 0)),
            redrives=int(data.get("redrives", 0)),
            resends=int(data.get("resends", 0)),
            error=data.get("error"),
            error_step=data.get("error_step"),
            error_kind=data.get("error_kind"),
            parked_until=number("parked_until"),
            parked_reason=data.get("parked_reason"),
            created_at=number("created_at"),
            updated_at=number("updated_at"),
            step_started_at=number("step_started_at"),
            done_at=number("done_at"),
            compacted_at=number("compacted_at"),
            audit_result=data.get("audit_result"),
            audit_report=data.get("audit_report"),
            message=json.loads(data["message"]) if "message" in data else None,
            results={k[2:]: v for k, v in data.items() if k.startswith("r:")},
            intents={k[2:]: Intent(**json.loads(v)) for k, v in data.items() if k.startswith("i:")},
            finished={k[2:]: (float(v.split()[0]), int(v.split()[1])) for k, v in data.items() if k.startswith("s:")},
        )

    def as_dict(self) -> dict[str, Any]:
        """What an operator sees (`keap-orders status`): everything but the customer data of the message."""
        return {
            "external_id": self.external_id, "status": self.status, "lane": self.lane, "step": self.step,
            "pending_step": self.single,
            "attempts": self.attempts, "redrives": self.redrives, "resends": self.resends, "error": self.error, "error_step": self.error_step,
            "error_kind": self.error_kind, "parked_until": self.parked_until, "parked_reason": self.parked_reason,
            "created_at": self.created_at, "updated_at": self.updated_at, "done_at": self.done_at,
            "compacted_at": self.compacted_at, "results": self.results,
            "pending_writes": sorted(self.intents), "audit": self.audit_result, "audit_report": self.audit_report,
        }


@dataclass(frozen=True)
class Due:
    """A due order as the keeper sees it (see `Ledger.take_due`)."""

    external_id: str
    status: str
    step: str
    lane: str
    single: str
    parked_until: float | None
    redrives: int
    parked_reason: str
    lease_alive: bool
    now: float


@dataclass(frozen=True)
class FailedRow:
    """A failed order as `keap-orders failed` lists it (see `Ledger.failed_rows`)."""

    external_id: str
    step: str
    kind: str
    lane: str
    failed_at: float
    error: str


@dataclass(frozen=True)
class Gauges:
    """The ledger's gauges at one moment (see `Ledger.gauges`)."""

    orders: dict[str, int]  # by status, every status
    queues: dict[str, int]  # messages waiting per Celery queue
    overdue: int  # active orders the keeper should have looked at over a minute ago
    audits_due: int = 0  # orders whose writes were uncertain, waiting for their audit
    audit_reports: int = 0  # what audits found for an operator (`keap-orders failed`)
    redis_losses: int = 0  # times Redis was found to have lost acknowledged writes (the last 50)
