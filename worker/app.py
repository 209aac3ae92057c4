"""The Celery app: lanes (live before backfill) and the keeper's queue, late acks, a short visibility timeout, the
keeper's beat schedule, sending an order's steps, and the worker's start-up checks (in Celery's signals).

Nothing is read or initialised at import: the configuration is built from the settings when Celery first needs
it (or by `configure(settings)`); checks, Sentry and metrics start in the worker's `celeryd_init` signal, logging
in `setup_logging`, and a heartbeat file (for health checks) is touched on every Celery heartbeat.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import redis
from celery import Celery, signals
from kombu import Exchange, Queue, pools

from worker import context, liveness, pipeline
from worker.ops import logs, metrics, sentry
from worker.settings import Settings, get_settings
from worker.steps import readings

log = logging.getLogger(__name__)

app = Celery("keap_orders", include=["worker.tasks"])
EX_CONFIG = 78  # sysexits.h: a configuration error; the worker refuses to start


def _lane(name: str) -> Queue:
    # Each queue gets its own exchange: queues left on Celery's default exchange share one routing key, and the
    # Redis transport then copies every message into both queues — each task would run twice.
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.redis_url,
        "broker_transport": "worker.broker:Transport",  # kombu's Redis transport, its ack guarded (worker/broker.py)
        "task_queues": tuple(_lane(q) for q in (settings.live_queue, settings.backfill_queue, settings.keeper_queue)),
        "task_default_queue": settings.live_queue,
        "task_routes": {"keap.keeper": {"queue": settings.keeper_queue}},
        # A step is acknowledged only once it has finished, so a crashed worker's step is delivered again
        # (every step is exactly-once by design); the prefetch of one keeps a slow backfill from hoarding work.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Short: a dead worker's message comes back within minutes. Long waits are parked in the ledger and
            # released by the keeper, and broker countdowns stay far below it (BROKER_RETRY_MAX_SECONDS).
            "visibility_timeout": settings.visibility_timeout_seconds,
            # With -Q keap.live,keap.backfill the worker always takes live work first.
            "queue_order_strategy": "priority",
        },
        "beat_schedule": {
            "keeper": {"task": "keap.keeper", "schedule": settings.keeper_interval_seconds,
                       "options": {"queue": settings.keeper_queue, "expires": settings.keeper_interval_seconds * 2}},
        },
        "worker_hijack_root_logger": False,
    }


def configure(settings: Settings) -> None:
    """Point the app at these settings (a producer or test with its own settings; the worker uses the defaults).

    Queues declared before stay declared, so one process (a test session, a bench) can send for several runs."""
    config = celery_config(settings)
    known = {q.name: q for q in app.conf.task_queues or ()} if "task_queues" in app.conf.changes else {}
    config["task_queues"] = tuple({**known, **{q.name: q for q in config["task_queues"]}}.values())
    moved = "broker_url" in app.conf.changes and app.conf.broker_url != config.get("broker_url")
    app.conf.update(config)
    if moved:
        # Another broker: the cached connection pool and the producers on it (control's ping, task sends) would still
        # talk to the old one (kombu's registry hands the old producer pool back for an equal connection). Dropped,
        # not closed: a thread of the process may still hold a connection of it.
        pools.connections.clear()
        pools.producers.clear()
        app._pool = None
        app.amqp._producer_pool = None
    for queue in config["task_queues"]:  # Celery keeps the queues it has read already
        app.amqp.queues.setdefault(queue.name, queue)


app.add_defaults(lambda: celery_config(get_settings()))


def send(settings: Settings, external_id: str, lane: str, step: str, ticket: str | None) -> None:
    """Send an order's steps: the chain from `step` to the end carrying `ticket` (each runs only after the previous
    succeeded), or, with no ticket, the single `step` on its own."""
    queue = pipeline.queue_for(lane, settings)
    if ticket is None:
        app.send_task(pipeline.step(step).task, args=(external_id,), queue=queue)
        return
    first, *rest = pipeline.steps_from(step)
    # One message whose `chain` lists the steps after the first, as Celery's canvas would send them (the worker pops
    # the next one when a step succeeds), built directly: the canvas freezes every step first (ids, options) and
    # cost most of a producer's time per order (bench/http_ingest.py).
    later = [{"task": s.task, "args": [external_id], "kwargs": {"ticket": ticket}, "options": {"queue": queue},
              "subtask_type": None, "immutable": True} for s in reversed(rest)]
    app.send_task(first.task, args=(external_id,), kwargs={"ticket": ticket}, queue=queue, chain=later or None)


def readiness_problems(settings: Settings) -> list[str]:
    """Why a worker with these settings must not take work: it would drop or stall every order it touches."""
    problems = time_limit_problems(settings)
    try:
        context.credential(settings)
    except context.NoCredential as exc:
        problems.append(str(exc))
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        return problems + [f"Redis at REDIS_URL does not answer ({type(exc).__name__}); start it or fix REDIS_URL"]
    problems += readings.start_problems(context.ledger(settings, client))
    if settings.require_persistent_redis:
        problems += durability_problems(settings, client)
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        persistence = client.config_get("appendonly").get("appendonly") == "yes" or bool(
            client.config_get("save").get("save"))
    except redis.ResponseError:
        log.warning("Redis does not allow CONFIG GET: make sure it never evicts keys and keeps its data")
        return problems
    if policy not in (None, "noeviction"):
        problems.append(f"Redis evicts keys (maxmemory-policy {policy}): an evicted ledger entry means a duplicate "
                        "order in Keap; set maxmemory-policy noeviction")
    if not persistence and settings.require_persistent_redis:
        problems.append("Redis keeps nothing on disk (appendonly no, no save points): a restart would forget what "
                        "was written to Keap; enable appendonly yes, or set REQUIRE_PERSISTENT_REDIS=false for a "
                        "throwaway development Redis")
    return problems


def durability_problems(settings: Settings, client: redis.Redis) -> list[str]:
    """Whether this Redis keeps the promise LEDGER_DURABILITY asks for: each intent on disk (and on LEDGER_REPLICAS
    replicas) before its Keap write. Logs the promise that holds."""
    found = context.ledger(settings, client).durability()
    log.info("ledger durability: %s", found.promise)
    problems = []
    if settings.ledger_durability == "disk" and not found.on_disk:
        problems.append(f"Redis can lose the intent a Keap write rests on ({found.how}); set "
                        "appendfsync always (deploy/compose.yml does), or use Redis >= 7.2 with appendonly yes "
                        "(WAITAOF), or accept the weaker promise with LEDGER_DURABILITY=detect (docs/exactly-once.md)")
    connected = int(client.info("replication").get("connected_slaves", 0))
    if connected < settings.ledger_replicas:
        problems.append(f"LEDGER_REPLICAS is {settings.ledger_replicas} but Redis has {connected} replica(s) "
                        "connected; connect them or lower LEDGER_REPLICAS")
    return problems


def time_limit_problems(settings: Settings) -> list[str]:
    soft, hard = settings.task_soft_time_limit_seconds, settings.task_time_limit_seconds
    problems = []
    if not soft < hard:
        problems.append(f"TASK_SOFT_TIME_LIMIT_SECONDS ({soft:g}) must be below TASK_TIME_LIMIT_SECONDS ({hard:g})")
    if not hard < settings.visibility_timeout_seconds:
        problems.append(f"TASK_TIME_LIMIT_SECONDS ({hard:g}) must be below VISIBILITY_TIMEOUT_SECONDS "
                        f"({settings.visibility_timeout_seconds}): a step still running when its message becomes "
                        "visible again would run twice at once")
    if soft < 3 * settings.keap_timeout_seconds:
        problems.append(f"TASK_SOFT_TIME_LIMIT_SECONDS ({soft:g}) must leave room for a few Keap calls of "
                        f"KEAP_TIMEOUT_SECONDS ({settings.keap_timeout_seconds:g}) each: at least three")
    return problems


@signals.celeryd_init.connect
def _init_worker(**_) -> None:
    settings = get_settings()
    problems = readiness_problems(settings)
    if problems:
        for problem in problems:
            print(f"keap-orders worker refuses to start: {problem}", file=sys.stderr)
        raise SystemExit(EX_CONFIG)
    sentry.init(settings)
    metrics.enable(settings.prometheus_multiproc_dir)  # before the pool forks and before any metric is made
    # A step past the soft limit is retried (the runner's `interrupted`); past the hard limit its process is killed
    # and the keeper re-sends the order; both below the visibility timeout (checked above). Set here, for the worker
    # only: Celery copies the limits a producer has configured into each message, and the message's would win.
    app.conf.update(task_soft_time_limit=settings.task_soft_time_limit_seconds,
                    task_time_limit=settings.task_time_limit_seconds)


@signals.setup_logging.connect
def _init_logging(loglevel=logging.INFO, **_) -> None:
    # Connected, so Celery leaves logging to us: JSON lines (or text on a terminal), scrubbed.
    logs.configure(loglevel or logging.INFO, get_settings().log_format)


@signals.heartbeat_sent.connect
@signals.worker_ready.connect
def _heartbeat(**_) -> None:
    path = get_settings().heartbeat_file
    if path:
        Path(path).touch()


@signals.worker_process_init.connect
def _after_fork(**_) -> None:
    context.install(None)


@signals.worker_ready.connect
def _start_beating(sender=None, **_) -> None:
    liveness.start_beating(sender.hostname)


@signals.task_received.connect
def _received(request=None, **_) -> None:
    liveness.received(request.hostname, request.name, request.args, request.kwargs)
