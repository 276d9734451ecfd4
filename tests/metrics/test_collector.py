"""ServerCollector in-process, over a real pipeline, writer and file: what it reads at
scrape time, the forwarder lag's place, and the writer's failure count and latency."""

from __future__ import annotations

import asyncio
import errno
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from log_server import __version__
from log_server.core.format import FORMATTERS
from log_server.core.pipeline import LogPipeline
from log_server.core.records import LogRecord
from log_server.core.sequencer import Sequencer
from log_server.events import ServerEvents
from log_server.health import Health
from log_server.metrics.collector import ServerCollector, new_registry
from log_server.sinks.retry import RetryPolicy
from log_server.sinks.rotating_file import RotatingFileSink
from log_server.sinks.writer import BatchWriter
from log_server.sources.source import Tally
from log_server.stderr_echo import StderrEcho


@dataclass
class KafkaLag:
    name: str
    lag_lines: int
    lag_seconds: float

    def lag(self) -> tuple[int, float]:
        return self.lag_lines, self.lag_seconds


@dataclass
class CountedSource:
    """A source's counts as tallies() reports them (only that part of Source is read)."""

    counts: list[Tally]

    def tallies(self) -> list[Tally]:
        return self.counts


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(text: bytes) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


class Parts:
    def __init__(self, tmp_path: Path, forwarders: list[KafkaLag] | None = None) -> None:
        tmp_path.mkdir(exist_ok=True)
        self.sink = RotatingFileSink(tmp_path, max_file_bytes=1 << 20, max_files=2)
        self.sink.open()
        self.pipeline = LogPipeline(Sequencer(0), FORMATTERS["text"], 1 << 20)
        self.events = ServerEvents("LogServer", self.pipeline, StderrEcho(io.StringIO()))
        self.health = Health()
        self.registry, self.write_seconds = new_registry()
        self.writer = BatchWriter(
            self.pipeline,
            self.sink,
            self.events,
            self.health,
            RetryPolicy(initial_delay_s=0.001, max_delay_s=0.001),
            observe_write=self.write_seconds.observe,
        )
        sources = [
            CountedSource([Tally("tcp", 7, 1, 2, 3), Tally("unix", 4, 0, 0, 0)]),
            CountedSource([Tally("grpc", 5, 2), Tally("otlp", 6, 0)]),
        ]
        self.registry.register(
            ServerCollector(
                __version__,
                "native",
                self.pipeline,
                self.writer,
                self.sink,
                sources,  # type: ignore[arg-type]  # only tallies() is read
                self.health,
                self.events,
                forwarders or [],
            )
        )

    def scrape(self) -> Samples:
        return samples_of(generate_latest(self.registry))


def test_figures_are_read_at_scrape_time(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    parts.pipeline.submit([LogRecord(message="one"), LogRecord(message="two")])
    before = parts.scrape()
    assert before[("log_server_queue_lines", frozenset())] == 2
    assert before[("log_server_queue_bytes", frozenset())] == parts.pipeline.queued_bytes > 0
    assert before[("log_server_messages_written_total", frozenset())] == 0
    received = "log_server_messages_received_total"
    assert before[(received, frozenset({("source", "tcp")}))] == 7
    assert before[(received, frozenset({("source", "unix")}))] == 4
    assert before[(received, frozenset({("source", "otlp")}))] == 6
    refused = "log_server_requests_refused_total"
    assert before[(refused, frozenset({("source", "grpc")}))] == 2
    assert before[("log_server_connections", frozenset({("listener", "tcp")}))] == 2
    refused_connections = "log_server_connections_refused_total"
    assert before[(refused_connections, frozenset({("listener", "tcp")}))] == 3
    assert ("log_server_connections", frozenset({("listener", "grpc")})) not in before
    assert not any(name == "log_server_forwarder_lag_lines" for name, _ in before)

    parts.events.file_rotated("x")
    parts.health.set_degraded("disk full")
    asyncio.run(_write_all(parts))
    after = parts.scrape()
    assert after[("log_server_messages_written_total", frozenset())] == 3
    assert after[("log_server_written_bytes_total", frozenset())] == parts.sink.path.stat().st_size
    assert after[("log_server_queue_lines", frozenset())] == 0
    assert after[(received, frozenset({("source", "server")}))] == 1
    assert after[("log_server_events_total", frozenset({("event", "file_rotated")}))] == 1
    assert after[("log_server_healthy", frozenset())] == 0
    assert after[("log_server_write_duration_seconds_count", frozenset())] >= 1


def test_forwarder_lag_has_its_place(tmp_path: Path) -> None:
    parts = Parts(tmp_path, [KafkaLag("kafka", 12, 1.5)])
    samples = parts.scrape()
    assert samples[("log_server_forwarder_lag_lines", frozenset({("forwarder", "kafka")}))] == 12
    assert samples[("log_server_forwarder_lag_seconds", frozenset({("forwarder", "kafka")}))] == 1.5


def test_failed_writes_are_counted_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = Parts(tmp_path)
    real_write = os.write
    faults = [errno.EIO, errno.ENOSPC]

    def failing_write(fd: int, data: memoryview | bytes) -> int:
        if faults:
            raise OSError(faults.pop(0), os.strerror(errno.EIO))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    parts.pipeline.submit([LogRecord(message="kept")])
    asyncio.run(_write_all(parts))
    samples = parts.scrape()
    assert samples[("log_server_write_failures_total", frozenset())] == 2
    # "kept", the two write_failed lines and the write_recovered line
    assert samples[("log_server_messages_written_total", frozenset())] == 4
    assert parts.events.counts == {"write_failed": 2, "write_recovered": 1}
    assert b"kept" in parts.sink.path.read_bytes()


async def _write_all(parts: Parts) -> None:
    parts.pipeline.close()
    await parts.writer.run()


def test_the_registry_is_the_servers_own(tmp_path: Path) -> None:
    """Two servers in one process (as here) keep separate figures."""
    first, second = Parts(tmp_path / "a"), Parts(tmp_path / "b")
    first.write_seconds.observe(0.01)
    assert first.scrape()[("log_server_write_duration_seconds_count", frozenset())] == 1
    assert second.scrape()[("log_server_write_duration_seconds_count", frozenset())] == 0
