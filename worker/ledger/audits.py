"""The audit index: orders whose Keap writes were uncertain (a lost answer, a Redis that lost writes), by the time
they are looked at again; and what the audits found for an operator (`keap-orders failed`, `status`)."""
from __future__ import annotations

from worker.ledger.store import Store, text


class Audits(Store):
    @property
    def audit_key(self) -> str:
        return f"{self.prefix}:audit"

    @property
    def audit_reports_key(self) -> str:
        return f"{self.prefix}:audit:reported"

    def take_audits(self, limit: int, hold: float) -> list[tuple[str, list[str]]]:
        """Up to `limit` orders whose audit is due, with the writes to audit; each held `hold` seconds (another keeper
        skips it; it is due again then unless `audit_done` or `audit_at` moved it). O(what is due)."""
        flat = self._lua.run("take_audits", keys=[self.audit_key, self.order_key("")], args=[limit, hold])
        pairs = zip(flat[0::2], flat[1::2])
        return [(text(ext), [w for w in text(whats).split(",") if w]) for ext, whats in pairs]

    def audit_at(self, external_id: str, when: float) -> None:
        self.redis.zadd(self.audit_key, {external_id: when}, xx=True)

    def audit_done(self, external_id: str, result: str, report: str | None = None) -> None:
        """The audit ran: `result` in the order (`status`), and `report` (a finding an operator must act on) in the
        audit view too."""
        now = self.now()
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.audit_key, external_id)
        pipe.hset(self.order_key(external_id), mapping={"audit_result": result, "audited_at": now})
        pipe.hdel(self.order_key(external_id), "audit")
        if report:
            pipe.hset(self.order_key(external_id), "audit_report", report)
            pipe.zadd(self.audit_reports_key, {external_id: now})
        pipe.execute()

    def audit_reports(self, limit: int = 100) -> list[tuple[str, float, str]]:
        """What audits found that an operator must act on, oldest first: (external id, when, what to do)."""
        found = self.redis.zrange(self.audit_reports_key, 0, limit - 1, withscores=True)
        pipe = self.redis.pipeline(transaction=False)
        for ext, _ in found:
            pipe.hget(self.order_key(ext.decode()), "audit_report")
        return [(ext.decode(), at, text(report)) for (ext, at), report in zip(found, pipe.execute())]
