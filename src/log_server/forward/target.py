"""`--forward kafka://HOST:PORT[,HOST:PORT...]/TOPIC?options` -> one frozen KafkaTarget."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")
OPTIONS: dict[str, tuple[str, ...]] = {
    "acks": ("all", "1"),
    "compression": ("none", "gzip", "snappy", "lz4", "zstd"),
    "key": ("host", "server"),
}


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    url: str
    bootstrap: tuple[str, ...]  # host:port of the brokers to ask first
    topic: str
    acks: str = "all"  # all: every in-sync replica has the record (with idempotence)
    # lz4: Kafka stores and carries a fraction of the bytes, and a local broker took 1.7x the
    # lines a second (docs/design.md); every Kafka since 0.10 and every client reads it.
    compression: str = "lz4"
    key: str = "host"  # host: the line's hostname; server: --name (one partition, total order)

    @property
    def checkpoint_name(self) -> str:
        """The checkpoint's file name in the log directory: one per broker list and topic."""
        brokers = "_".join(
            b.replace("[", "").replace("]", "").replace(":", "-") for b in self.bootstrap
        )
        return f".forward-kafka-{brokers}-{self.topic}.checkpoint"


def parse_forward_url(text: str) -> KafkaTarget:
    """A ValueError says what is wrong with the URL."""
    parts = urlsplit(text)
    if parts.scheme != "kafka":
        raise ValueError(f"{text!r}: only kafka://HOST:PORT/TOPIC is supported")
    bootstrap = tuple(b.strip() for b in parts.netloc.split(","))
    for broker in bootstrap:
        match = _HOST_PORT.fullmatch(broker)
        if not match or not 0 < int(match.group(2)) <= 65535:
            raise ValueError(f"{text!r}: {broker!r} is not HOST:PORT")
    topic = parts.path.removeprefix("/")
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(
            f"{text!r}: {topic!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)"
        )
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name not in OPTIONS:
            raise ValueError(f"{text!r}: unknown option {name!r} (known: {', '.join(OPTIONS)})")
        if value not in OPTIONS[name]:
            raise ValueError(f"{text!r}: {name}={value!r}: one of {', '.join(OPTIONS[name])}")
        options[name] = value
    return KafkaTarget(text, bootstrap, topic, **options)
