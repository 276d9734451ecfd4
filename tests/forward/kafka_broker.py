"""A real single-node Kafka broker (KRaft: broker+controller in one JVM) on free loopback ports.

Why a real broker: the forwarder's guarantees (order, resume, at-least-once) are only worth
testing against the real thing. Jars come from tools/kafka/fetch.sh (Maven, cached in .tools/).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / ".tools" / "kafka" / "lib"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_jars() -> Path:
    """Resolve the broker jars once (minutes on a fresh machine, then cached)."""
    subprocess.run([str(ROOT / "tools" / "kafka" / "fetch.sh")], check=True, timeout=900)
    return LIB


@dataclass
class KafkaBroker:
    """One broker process; `stop` and `start` keep its data so restarts keep the topics."""

    directory: Path
    port: int
    controller_port: int
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        data = self.directory / "data"
        config = self.directory / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "num.partitions=1",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        return config

    def format(self) -> None:
        """`kafka-storage format`: a KRaft log dir needs a cluster id before the first start."""
        config = self.write_config()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid: a leading '-' reads as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                "java",
                "-cp",
                f"{LIB}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(config),
            ],
            timeout=120,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:  # its config dump goes to stderr: shown only on failure
            raise RuntimeError(f"kafka-storage format failed: {result.stderr[-2000:]}")

    def start(self, timeout: float = 90.0) -> None:
        log_path = self.directory / "broker.log"
        already = log_path.stat().st_size if log_path.exists() else 0
        log = self.log = open(self.directory / "broker.log", "ab")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(
            [
                "java",
                "-Xmx512m",
                "-cp",
                f"{LIB}/*",
                "kafka.Kafka",
                str(self.directory / "server.properties"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        marker = b"Kafka Server started"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited {self.process.returncode}; see {log.name}")
            if marker in log_path.read_bytes()[already:]:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"broker did not start in {timeout}s; see {log.name}")

    def stop(self) -> None:
        """Stop our own process by its PID (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self._kill()
        if self.log is not None:
            self.log.close()
            self.log = None

    def _kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_broker(directory: Path) -> KafkaBroker:
    ensure_jars()
    broker = KafkaBroker(directory, _free_port(), _free_port())
    broker.format()
    broker.start()
    return broker
