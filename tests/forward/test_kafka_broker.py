"""The broker fixture itself: a real KRaft broker accepts connections and survives stop/start."""

from __future__ import annotations

import socket

from .kafka_broker import KafkaBroker


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except OSError:
        return False


def test_broker_listens_and_restarts(kafka_broker: KafkaBroker) -> None:
    assert _accepts(kafka_broker.port)
    kafka_broker.stop()
    assert not _accepts(kafka_broker.port)
    kafka_broker.start()
    assert _accepts(kafka_broker.port)
