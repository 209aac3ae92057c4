"""Whether Redis can still lose what the ledger says: each intent on disk (or on replicas) before its Keap write, and
a Redis that lost acknowledged writes (a restart, a failover, a restore) found before any write trusts it."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis

from worker.ledger.audits import Audits
from worker.ledger.state import Intent, OrderState
from worker.ledger.store import text

log = logging.getLogger(__name__)


class NotDurable(redis.RedisError):
    """An intent did not reach Redis's disk (or its replicas) in time: its Keap write was not sent."""


@dataclass(frozen=True)
class Durability:
    """What Redis promises for an acknowledged write, and what the ledger waits for after each intent."""

    on_disk: bool  # an intent is on Redis's disk before its Keap write (appendfsync always, or WAITAOF)
    waitaof: bool  # wait for it with WAITAOF (Redis >= 7.2, appendonly yes, fsync not `always`)
    replicas: int  # replicas it must reach first (WAIT / WAITAOF), LEDGER_REPLICAS
    how: str  # what Redis does that gives (or does not give) it

    @property
    def promise(self) -> str:
        """One line for the start-up log and the doctor."""
        if self.on_disk:
            return f"intents on disk before their Keap write ({self.how})"
        return (f"intents not on disk before their Keap write ({self.how}); a loss is found by the restart it takes, "
                "and the orders around it look in Keap first")

    @classmethod
    def of(cls, version: str, aof: bool, fsync: str | None, replicas: int = 0) -> Durability:
        """From Redis's version, `appendonly`, `appendfsync` (None when CONFIG is not allowed) and LEDGER_REPLICAS."""
        waitaof = aof and fsync != "always" and tuple(int(p) for p in version.split(".")[:2]) >= (7, 2)
        on_disk = aof and (fsync == "always" or waitaof)
        how = ("appendfsync always" if on_disk and not waitaof else "WAITAOF after each intent" if waitaof else
               f"appendonly {'yes' if aof else 'no'}, appendfsync {fsync or 'unknown'}, Redis {version}: a host crash "
               "may lose the last second")
        return cls(on_disk, waitaof, replicas, how + (f", then WAIT for {replicas} replica(s)" if replicas else ""))


@dataclass(frozen=True)
class LossPolicy:
    """How the ledger treats a Redis that lost writes, and the audit after uncertain writes (from the settings)."""

    grace_seconds: float = 3600.0  # REDIS_LOSS_GRACE_SECONDS
    audit_after_seconds: float = 900.0  # AUDIT_AFTER_SECONDS
    replicas: int = 0  # LEDGER_REPLICAS
    sync_timeout_ms: int = 2000


class Loss(Audits):
    policy = LossPolicy()
    _seen: tuple[str, str] = ("", "")  # run id and epoch this process saw last
    _durability: Durability | None = None

    @property
    def identity_key(self) -> str:
        return f"{self.prefix}:redis"

    @property
    def losses_key(self) -> str:
        return f"{self.prefix}:redis:losses"

    def check_redis(self) -> float | None:
        """Find a Redis that lost acknowledged writes (the keeper every pass, producers when they register); returns
        the time of the latest loss (None: never)."""
        answer = self._lua.run("check_redis", keys=[self.identity_key, self.losses_key, self.status_key("")],
                               args=list(self._seen))
        return self._saw(*answer)

    def lost_write(self, state: OrderState, what: str, looked: int) -> None:
        """The hook at the start of `write_once`: when Redis lost writes this order may have made, the write is
        treated as unanswered, sent at the loss (an intent in the ledger and in `state`, counting `looked` lookups
        already, so it settles and is looked up once). An order with an intent for the write goes to the audit."""
        answer = self._lua.run(
            "lost_write", keys=[self.identity_key, self.losses_key, self.status_key(""),
                                self.order_key(state.external_id), self.audit_key],
            args=[what, *self._seen, self.policy.grace_seconds, looked, self.policy.audit_after_seconds,
                  state.external_id])
        self._saw(*answer[:4])
        intent = text(answer[4])
        if intent and what not in state.intents:
            state.intents[what] = Intent(**json.loads(intent))
            log.warning("order %s: %s may have been written before Redis lost writes; looking in Keap first",
                        state.external_id, what)

    def losses(self, limit: int = 10) -> list[dict]:
        """The latest losses found, newest first: {epoch, at, why}."""
        return [json.loads(raw) for raw in self.redis.zrevrange(self.losses_key, 0, limit - 1)]

    def _saw(self, run, epoch, loss_at, why) -> float | None:
        self._seen = (text(run), text(epoch))
        if text(why):
            self._durability = None  # another Redis: read its settings again
            log.error("Redis lost acknowledged writes: %s; orders registered before %s look in Keap before each "
                      "write", text(why), "it (or within REDIS_LOSS_GRACE_SECONDS after)")
        return float(text(loss_at)) if text(loss_at) else None

    # durable intents ------------------------------------------------------------------------------------
    def durability(self) -> Durability:
        """What this Redis promises (read once, and again after a loss)."""
        if self._durability is None:
            server, persistence = self.redis.info("server"), self.redis.info("persistence")
            try:
                fsync = self.redis.config_get("appendfsync").get("appendfsync")
            except redis.ResponseError:
                fsync = None  # CONFIG renamed or refused (managed Redis)
            self._durability = Durability.of(str(server["redis_version"]), bool(persistence.get("aof_enabled")),
                                             fsync, self.policy.replicas)
        return self._durability

    def await_durable(self, external_id: str, what: str) -> None:
        """After an intent, before its Keap write: wait until Redis can no longer lose it (WAITAOF, WAIT), as far as
        this Redis allows. When it does not get there in time the intent is dropped (nothing was sent) and
        NotDurable raised: the step is retried."""
        mode = self.durability()
        if not (mode.waitaof or mode.replicas):
            return
        timeout = self.policy.sync_timeout_ms
        if mode.waitaof:
            local, copies = self.redis.execute_command("WAITAOF", 1, mode.replicas, timeout)
        else:
            local, copies = 1, self.redis.execute_command("WAIT", mode.replicas, timeout)
        if local < 1 or copies < mode.replicas:
            self.redis.hdel(self.order_key(external_id), f"i:{what}")
            raise NotDurable(f"order {external_id}: the intent of {what} reached {local} disk(s) and {copies} "
                             f"replica(s) within {timeout} ms; not sent")
