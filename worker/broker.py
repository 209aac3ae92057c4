"""The Redis broker transport, with its acknowledgement guarded: a step that finishes after Redis restarted acks on
a channel whose connection kombu has closed, and kombu 5.7 raises AttributeError there (`'NoneType' object has no
attribute 'hostname'`), which kills the worker. Here that is a connection error: Celery logs it and goes on."""
from __future__ import annotations

import redis
from kombu.transport import redis as kombu_redis


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag):
        with _closed_connection_is_lost():
            super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        with _closed_connection_is_lost():
            super().reject(delivery_tag, requeue=requeue)


class _closed_connection_is_lost:
    # The message stays in the broker's unacked set and comes back after the visibility timeout, where the ledger
    # drops it as stale: the step's effect is recorded already.
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is AttributeError:
            raise redis.ConnectionError(f"the broker connection of this message was closed ({exc})") from exc
        return False


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel
