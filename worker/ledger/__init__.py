"""Per-order state in Redis: the single source of truth for what has been done in Keap, and what is due when.

Keys under the prefix (see store.py):
  order:{id}   hash: status, step, lane, ticket, the message, results `r:<what>` (Keap ids), intents `i:<what>`
               (a non-idempotent write was sent: {"at": server time, "checks": lookups since, "by": lease token})
  status:{s}   one set per status, for counts and listings; status:by-lane the counts per `<lane>:<status>`, moved
               with the sets (lua/move.lua)
  email:{d}    the orders of one customer email, by its digest d (sha256 of the trimmed, lower-cased address, 32 hex
               digits; never the address); keapid: Keap order ids (`order:<id>`) to the order that wrote them;
               contact:{id} the orders of one Keap contact. Written with the data (register, record), dropped when
               retention compacts the order: the console's search reads them, never every order
  watch        sorted set of active orders by the time the keeper must look at them: when a parked order wakes,
               or the deadline by which a queued or running order must have moved. The keeper reads only what is
               due, never the whole ledger.
  lease:{name} a lease (token, expiry) on an order or a shared resource, renewed while its holder works
  done         sorted set of done orders by the time they finished: retention compacts what is older than
               DONE_RETENTION_DAYS to a small marker (`compact_done`), reading only what is due
  held:{group} parked orders waiting for one event; cache:{name} caches shared by all workers
  redis        the run id of the Redis that keeps the ledger and an epoch; redis:losses the losses of acknowledged
               writes found (a restart, failover or restore): orders around a loss look in Keap first (loss.py)
  audit        sorted set of orders whose writes were uncertain, by the time they are audited (audits.py);
               audit:reported what audits found for an operator
  problems     sorted set of conflicts and invalid store deliveries by time; problem:{ref} each one's record;
               delivery:{source}:{id} store deliveries already handled (expire after a week)
  orphans      sorted set (by time) of answers to writes that came after the worker lost the order's lease
  worker:{name} a worker's heartbeat (workers.py: who holds a queued order's message)

Every status change is one Lua script (lua/*.lua) using Redis server time, so all hosts agree on the clock.
`cancelled` is final: no script moves an order out of it.
"""
from __future__ import annotations

from worker.ledger.caches import Caches
from worker.ledger.audits import Audits
from worker.ledger.effects import Effects, Orphan, OrphanWrite
from worker.ledger.finds import Finds
from worker.ledger.leases import Lease, LeaseLost, Leases
from worker.ledger.loss import Durability, Loss, LossPolicy, NotDurable
from worker.ledger.orders import Orders
from worker.ledger.problems import Problems
from worker.ledger.reads import Reads
from worker.ledger.retention import Retention
from worker.ledger.state import ACTIVE, FINAL, STATUSES, Due, FailedRow, Gauges, Intent, OrderState
from worker.ledger.watch import Watch
from worker.ledger.workers import Holder, Workers

__all__ = ["ACTIVE", "FINAL", "STATUSES", "Due", "Durability", "FailedRow", "Gauges", "Holder", "Intent", "Lease",
           "LeaseLost", "Ledger", "LossPolicy", "NotDurable", "OrderState", "Orphan", "OrphanWrite"]


class Ledger(Orders, Effects, Watch, Workers, Retention, Leases, Caches, Reads, Finds, Loss, Audits, Problems):
    """The ledger on one Redis client under one key prefix: the order state machine (orders.py), Keap effects
    (effects.py), the keeper's watch (watch.py), workers' heartbeats, retention, leases, caches, reads, finds by
    email, Keap id and lane (finds.py), lost writes (loss.py), audits and problems; one class, one part a module."""
