"""Celery app wiring that, if wrong, silently doubles or reorders work."""
from __future__ import annotations


def test_each_lane_has_its_own_route():
    # Two queues on one (exchange, routing key) would each get a copy of every message on the Redis transport.
    from worker.app import celery_config
    from worker.settings import Settings

    queues = celery_config(Settings())["task_queues"]
    assert len(queues) == 3  # live, backfill, keeper
    assert len({(q.exchange.name, q.routing_key) for q in queues}) == 3


def test_worker_takes_live_work_first_and_acks_late():
    from worker.app import app

    assert app.conf.broker_transport_options["queue_order_strategy"] == "priority"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1


def test_keap_refusals_become_actionable_operator_messages():
    # A refused credential never fails an order (tests/e2e/test_credentials.py): it waits for the credential.
    from worker.keap import KeapNotFound, KeapValidationError
    from worker.runner import refused

    gone = refused("shop-1", "create_order", KeapNotFound("Keap answered 404", status=404))
    assert gone.startswith("order shop-1: create_order: Keap refused the request")
    assert "deleted in Keap" in gone and "keap-orders retry shop-1" in gone
    bad = refused("shop-2", "record_payment", KeapValidationError("Keap answered 400: amount", status=400))
    assert "fix the order" in bad and "keap-orders retry shop-2" in bad


def test_time_limits_are_the_workers_and_fit_under_the_visibility_timeout():
    from worker.app import celery_config, time_limit_problems
    from worker.settings import Settings

    # Celery copies a producer's configured limits into each message, and the worker obeys the message's: so the
    # configuration producers share carries none; the worker sets its own at start.
    assert not {"task_time_limit", "task_soft_time_limit"} & set(celery_config(Settings()))
    assert time_limit_problems(Settings()) == []
    assert len(time_limit_problems(Settings(task_time_limit_seconds=300, visibility_timeout_seconds=300))) == 1
    assert len(time_limit_problems(Settings(task_soft_time_limit_seconds=60, keap_timeout_seconds=30))) == 1
    assert len(time_limit_problems(Settings(task_soft_time_limit_seconds=280))) == 1  # not below the hard limit
