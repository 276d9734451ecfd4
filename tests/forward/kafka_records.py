"""Reading a topic back with the same client library the forwarder uses (confluent-kafka)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


@dataclass(frozen=True)
class Received:
    key: str
    value: bytes
    offset: int


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Received]], bool],
    timeout_s: float = 60.0,
) -> list[Received]:
    """Every record of partition 0 from the beginning, until `until` holds (AssertionError
    after `timeout_s`). Assigned, not subscribed: no consumer group, no rebalance wait."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[Received] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(out):
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(out)} records in {topic} after {timeout_s}s")
            for msg in consumer.consume(10_000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() in (
                        KafkaError.UNKNOWN_TOPIC_OR_PART,
                        KafkaError._PARTITION_EOF,
                    ):
                        continue
                    raise AssertionError(f"consuming {topic}: {error.str()}")
                key = msg.key()
                out.append(Received((key or b"").decode(), msg.value() or b"", msg.offset() or 0))
    finally:
        consumer.close()
    return out


def topic_exists(bootstrap: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=20)
    entry = metadata.topics.get(topic)
    return entry is not None and entry.error is None
