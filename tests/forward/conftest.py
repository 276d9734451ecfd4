"""The `kafka_broker` fixture: skips (saying why) unless LOG_SERVER_KAFKA_REQUIRED=1 (CI) makes
a broker that cannot start a failure, as LOG_SERVER_BROWSER_REQUIRED does for the browser tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kafka_broker import KafkaBroker, start_broker

REQUIRED = os.environ.get("LOG_SERVER_KAFKA_REQUIRED") == "1"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    try:
        if shutil.which("java") is None or shutil.which("mvn") is None:
            raise RuntimeError("java and mvn are needed for the real Kafka broker")
        broker = start_broker(Path(tmp_path_factory.mktemp("kafka")))
    except Exception as exc:
        if REQUIRED:
            raise
        pytest.skip(f"no Kafka broker: {exc}")
    try:
        yield broker
    finally:
        broker.stop()
