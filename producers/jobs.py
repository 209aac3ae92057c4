"""Backfill jobs in Redis beside the ledger (under its prefix: jobs, job:{id}, its :lease, :inflight and :invalid):
a file, how far it was read, its counts and orders in flight, so a feeder (producers/feeder.py) runs it apart from
any terminal and another resumes it after a crash."""
from __future__ import annotations

import csv
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from worker import lua
from worker.ledger import ACTIVE, Ledger

# queued: waiting for a feeder; running: a feeder reads it (or its feeder died and the next one takes it over);
# paused / cancelled by an operator (orders already sent still finish); finished: every row read and settled;
# failed: the file could not be read.
CLAIMABLE = ("queued", "running")
ENDED = ("finished", "cancelled", "failed")  # a job that will not be read again (trimmed after its retention)
COUNTS = ("sent", "skipped", "done", "failed", "cancelled", "invalid")
INVALID_CSV_COLUMNS = ("line", "external_id", "field", "problem", "fix")


@dataclass
class Job:
    id: str
    status: str
    file: str
    fmt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # encoding, id_prefix, store_timezone
    window: int = 200
    total: int | None = None  # orders in the file, once a feeder counted them
    calls_per_order: float | None = None  # Keap calls per valid order, estimated from the file
    position: int = 0  # rows (orders) read and handled
    line: int = 0  # the file line of the last row handled
    counts: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None  # when it finished or was cancelled
    read_all: bool = False
    claims: int = 0  # feeders that took the job (more than one: it was resumed)
    error: str | None = None

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[bytes, bytes], in_flight: int) -> Job:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        number = lambda name: float(data[name]) if data.get(name) else None  # noqa: E731
        return cls(id=job_id, status=data.get("status", "queued"), file=data.get("file", ""),
                   fmt=data.get("fmt") or None, options=json.loads(data.get("options", "{}")),
                   window=int(data.get("window", 200)), total=int(data["total"]) if "total" in data else None,
                   calls_per_order=number("calls_per_order"), position=int(data.get("position", 0)),
                   line=int(data.get("line", 0)), counts={name: int(data.get(name, 0)) for name in COUNTS},
                   in_flight=in_flight, created_at=float(data.get("created_at", 0)), started_at=number("started_at"),
                   finished_at=number("finished_at"), read_all=data.get("read_all") == "1",
                   claims=int(data.get("claims", 0)), error=data.get("error"))

    @property
    def settled(self) -> int:
        """Rows whose outcome is known: invalid, done (now or before), failed, cancelled."""
        c = self.counts
        return c["invalid"] + c["skipped"] + c["done"] + c["failed"] + c["cancelled"]

    def rate(self, now: float) -> float:
        """Orders finished by the workers per second since the job started."""
        elapsed = now - (self.started_at or now)
        finished = self.counts["done"] + self.counts["failed"]
        return finished / elapsed if elapsed > 1 else 0.0


def eta(job: Job, scopes: list[dict], now: float) -> str:
    """When the job should finish: a time today at the current rate, or the UTC date the daily quota allows
    (`Throttle.snapshot()` scopes: the backfill's share of the day and what is left of it)."""
    if job.status == "finished":
        return "finished"
    if job.total is None:
        return "not started"
    remaining = max(job.total - job.settled, 0)
    if remaining == 0:
        return "now"
    budgets = [(s["backfill_allowed"], s["backfill_allowed"] - s["day"]["backfill"]) for s in scopes
               if s.get("backfill_allowed") is not None]
    calls = remaining * (job.calls_per_order or 1.0)
    if budgets:
        per_day = min(b for b, _ in budgets)
        left_today = max(0, min(left for _, left in budgets))
        if calls > left_today and per_day > 0:
            days = math.ceil((calls - left_today) / per_day)
            day = datetime.fromtimestamp(now, timezone.utc).date() + timedelta(days=days)
            return f"{day.isoformat()} (the daily quota: {days} more day(s))"
    rate = job.rate(now)
    if rate <= 0:
        return "unknown yet"
    at = datetime.fromtimestamp(now + remaining / rate, timezone.utc)
    return at.strftime("%Y-%m-%d %H:%M UTC")


class Jobs:
    """The backfill jobs on the ledger's Redis and under its prefix."""

    def __init__(self, ledger: Ledger):
        self.ledger, self.redis, self.prefix = ledger, ledger.redis, ledger.prefix
        self._lua = {name: self.redis.register_script(lua.load("producers", name))
                     for name in lua.names("producers")}

    def key(self, job_id: str, part: str = "") -> str:
        return f"{self.prefix}:job:{job_id}" + (f":{part}" if part else "")

    @property
    def index_key(self) -> str:
        return f"{self.prefix}:jobs"

    # operators ------------------------------------------------------------------------------------------
    def create(self, file: str, fmt: str | None, options: dict[str, Any], window: int) -> Job:
        job_id = datetime.now(timezone.utc).strftime("%Y%m%d-") + uuid.uuid4().hex[:6]
        now = self.ledger.now()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key(job_id), mapping={"status": "queued", "file": file, "fmt": fmt or "", "window": window,
                                             "options": json.dumps(options), "created_at": now})
        pipe.zadd(self.index_key, {job_id: now})
        pipe.execute()
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(job_id))
        pipe.scard(self.key(job_id, "inflight"))
        raw, in_flight = pipe.execute()
        return Job.from_hash(job_id, raw, in_flight) if raw else None

    def recent(self, limit: int = 50) -> list[Job]:
        """The newest jobs first (the index, never a scan)."""
        ids = [m.decode() for m in self.redis.zrevrange(self.index_key, 0, limit - 1)]
        return [job for job in (self.get(i) for i in ids) if job is not None]

    def set_status(self, job_id: str, status: str) -> str:
        """pause (queued/running → paused), resume (paused → queued), cancel (not finished → cancelled); returns
        the status it had. A feeder reading the job sees the change within a second and stops."""
        allowed = {"paused": ("queued", "running"), "queued": ("paused",),
                   "cancelled": ("queued", "running", "paused")}[status]
        key = self.key(job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    old = pipe.hget(key, "status")
                    if old is None:
                        raise LookupError(f"job {job_id}: no such job (`keap-orders jobs` lists them)")
                    old = old.decode()
                    if old not in allowed:
                        raise ValueError(f"job {job_id} is {old}: it cannot be "
                                         f"{ {'queued': 'resumed'}.get(status, status)}")
                    pipe.multi()
                    pipe.hset(key, mapping={"status": status, **({"finished_at": self.ledger.now()}
                                                                 if status == "cancelled" else {})})
                    pipe.execute()
                    return old
                except redis.WatchError:
                    continue

    def trim(self, keep_seconds: float, limit: int = 100) -> int:
        """Delete ended jobs (finished, cancelled, failed; none of their orders in flight) recorded more than
        `keep_seconds` ago, with their invalid rows; returns how many. Reads only the jobs the index (by creation
        time) has before the cutoff, at most `limit`: what is due, and the few old jobs still paused or running.
        Called by feeders and when a job is recorded (the only way the index grows); DONE_RETENTION_DAYS=0 keeps all."""
        if keep_seconds <= 0:
            return 0
        cutoff = self.ledger.now() - keep_seconds
        ids = [m.decode() for m in self.redis.zrangebyscore(self.index_key, "-inf", cutoff, start=0, num=limit)]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.key(job_id), "status", "finished_at", "created_at")
            pipe.scard(self.key(job_id, "inflight"))
        answers = pipe.execute()
        gone = [job_id for job_id, (status, finished, created), in_flight in zip(ids, answers[::2], answers[1::2])
                if status is None or (status.decode() in ENDED and not in_flight
                                      and float(finished or created or 0) < cutoff)]
        if gone:
            pipe = self.redis.pipeline(transaction=True)
            for job_id in gone:
                pipe.delete(*(self.key(job_id, part) for part in ("", "invalid", "inflight", "lease")))
            pipe.zrem(self.index_key, *gone)
            pipe.execute()
        return len(gone)

    def invalid_rows(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(self.key(job_id, "invalid"), 0, -1)]

    def invalid_csv(self, job_id: str) -> str:
        """The job's invalid rows, one line per problem, with the fix: correct the file's lines and import again."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(INVALID_CSV_COLUMNS)
        for row in self.invalid_rows(job_id):
            for problem in row["errors"]:
                writer.writerow([row["line"], row.get("external_id") or "", problem.get("field", ""),
                                 problem.get("message", ""), problem.get("hint", "")])
        return out.getvalue()

    # feeders --------------------------------------------------------------------------------------------
    def claimable(self) -> list[str]:
        """Jobs a feeder may take: queued, or running with no live lease (their feeder died)."""
        ids = [m.decode() for m in self.redis.zrange(self.index_key, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.key(job_id), "status")
            pipe.exists(self.key(job_id, "lease"))
        answers = pipe.execute()
        return [job_id for job_id, status, leased in zip(ids, answers[::2], answers[1::2])
                if status and status.decode() in CLAIMABLE and not leased]

    def unsettled(self) -> list[str]:
        """Jobs not claimable that still have orders in flight (paused, cancelled, or read to the end)."""
        ids = [m.decode() for m in self.redis.zrange(self.index_key, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.scard(self.key(job_id, "inflight"))
        return [job_id for job_id, n in zip(ids, pipe.execute()) if n]

    def claim(self, job_id: str, token: str, lease_seconds: float) -> str:
        return self._lua["job_claim"](keys=[self.key(job_id), self.key(job_id, "lease")],
                                      args=[token, int(lease_seconds * 1000), self.ledger.now()]).decode()

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        return bool(self._lua["job_lease"](keys=[self.key(job_id, "lease")],
                                           args=[token, "renew", int(lease_seconds * 1000)]))

    def release(self, job_id: str, token: str) -> bool:
        return bool(self._lua["job_lease"](keys=[self.key(job_id, "lease")], args=[token, "release", 0]))

    def note(self, job_id: str, **fields: Any) -> None:
        self.redis.hset(self.key(job_id), mapping={k: v for k, v in fields.items()})

    def pending(self, job_id: str) -> int | None:
        """The row a feeder began to send (noted before it sends, cleared when the row is recorded)."""
        raw = self.redis.hget(self.key(job_id), "pending")
        return int(raw) if raw is not None else None

    def status(self, job_id: str) -> str:
        return (self.redis.hget(self.key(job_id), "status") or b"").decode()

    def record_row(self, job_id: str, token: str, position: int, line: int, counter: str, watch: str = "",
                   invalid: dict | None = None) -> bool:
        """One row handled (lua/job_read.lua); False when this feeder lost its lease (it must stop)."""
        return bool(self._lua["job_read"](
            keys=[self.key(job_id), self.key(job_id, "lease"), self.key(job_id, "inflight"),
                  self.key(job_id, "invalid")],
            args=[token, position, line, counter, watch, json.dumps(invalid) if invalid else ""]))

    def settle(self, job_id: str) -> int:
        """Count the job's orders that finished since the last look (lua/job_settle.lua); reads the in-flight
        set only (at most the job's window of orders). Marks a job read to the end and settled finished."""
        ids = [m.decode() for m in self.redis.smembers(self.key(job_id, "inflight"))]
        ended = [(ext, status or "failed") for ext, status in self.ledger.statuses(ids).items()
                 if status not in ACTIVE]
        settled = 0
        if ended:
            settled = self._lua["job_settle"](keys=[self.key(job_id), self.key(job_id, "inflight")],
                                              args=[x for pair in ended for x in pair])
        if len(ended) == len(ids):
            self._finish_if_read(job_id)
        return settled

    def _finish_if_read(self, job_id: str) -> None:
        key = self.key(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key, self.key(job_id, "inflight"))
                read_all, status = pipe.hmget(key, "read_all", "status")
                if read_all == b"1" and status == b"running" and not pipe.scard(self.key(job_id, "inflight")):
                    pipe.multi()
                    pipe.hset(key, mapping={"status": "finished", "finished_at": self.ledger.now()})
                    pipe.execute()
            except redis.WatchError:
                pass  # something moved: the next look decides

