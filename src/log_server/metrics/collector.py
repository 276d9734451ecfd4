"""The server's figures as Prometheus metrics, read when /metrics is scraped.

The collector reads counters the server keeps anyway (for its stats line, its health
answer, its own lines), at scrape time and on the event loop: ingest pays nothing for them,
and one scrape is a snapshot of one moment. The one figure observed as it happens is the
write latency histogram, once per write call (a batch, not a message)."""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.health import Health
from log_server.sinks.rotating_file import RotatingFileSink
from log_server.sinks.writer import BatchWriter
from log_server.sources.source import Source, Tally

# A write call takes microseconds to the page cache and milliseconds with an fsync or a slow
# disk; the client library's default buckets start at 5 ms.
WRITE_SECONDS_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Forwarder(Protocol):
    """What a forwarder tells /metrics (forward/supervisor.py): its name and its lag."""

    @property
    def name(self) -> str: ...

    def lag(self) -> tuple[int, float]:
        """(lines written and not yet acknowledged, seconds the oldest of them has waited)"""
        ...


def new_registry() -> tuple[CollectorRegistry, Histogram]:
    """The server's own registry (never the library's global one: two servers in one
    process, as in tests, must not share figures), with the process and Python collectors,
    and the write latency histogram the writer observes."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    write_seconds = Histogram(
        "log_server_write_duration_seconds",
        "Seconds one successful write call took (with its fsync under --fsync batch)",
        buckets=WRITE_SECONDS_BUCKETS,
        registry=registry,
    )
    return registry, write_seconds


class ServerCollector(Collector):
    def __init__(
        self,
        version: str,
        decoder: str,
        pipeline: LogPipeline,
        writer: BatchWriter,
        sink: RotatingFileSink,
        sources: Sequence[Source],
        health: Health,
        events: ServerEvents,
        forwarders: Sequence[Forwarder] = (),
    ) -> None:
        self.version, self.decoder = version, decoder
        self.pipeline, self.writer, self.sink = pipeline, writer, sink
        self.sources, self.health, self.events = sources, health, events
        self.forwarders = forwarders

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "log_server_build",
            "The running log_server",
            value={
                "version": self.version,
                "python": platform.python_version(),
                "decoder": self.decoder,
            },
        )
        tallies = [tally for source in self.sources for tally in source.tallies()]
        yield from self._messages(tallies)
        yield from self._queue_and_writes()
        yield from self._connections(tallies)
        yield from self._forwarders()

    def _messages(self, tallies: list[Tally]) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "log_server_messages_received",
            "Messages accepted (numbered and queued for the file), by the way they came in; "
            'source="server" is the server\'s own lines',
            labels=["source"],
        )
        refused = CounterMetricFamily(
            "log_server_requests_refused",
            "TCP frames (each closes its connection) and gRPC, gRPC-Web or OTLP calls refused",
            labels=["source"],
        )
        for tally in tallies:
            received.add_metric([tally.source], tally.received)
            refused.add_metric([tally.source], tally.refused)
        counts = self.events.counts
        received.add_metric(["server"], sum(counts.values()))
        yield received
        yield refused
        events = CounterMetricFamily(
            "log_server_events",
            "The server's own lines, by event (the function column of those lines)",
            labels=["event"],
        )
        for event, count in sorted(counts.items()):
            events.add_metric([event], count)
        yield events
        yield CounterMetricFamily(
            "log_server_messages_written",
            "Lines written to the log files (every source's, in sequence order)",
            value=self.pipeline.written,
        )
        yield CounterMetricFamily(
            "log_server_written_bytes",
            "Bytes written to the log files",
            value=self.writer.bytes_written,
        )

    def _queue_and_writes(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        yield GaugeMetricFamily(
            "log_server_queue_lines",
            "Lines accepted and not yet written",
            value=pipeline.queued_lines,
        )
        yield GaugeMetricFamily(
            "log_server_queue_bytes",
            "Bytes accepted and not yet written (intake pauses at --max_queue_bytes)",
            value=pipeline.queued_bytes,
        )
        yield GaugeMetricFamily(
            "log_server_queue_limit_bytes",
            "--max_queue_bytes",
            value=pipeline.max_queue_bytes,
        )
        yield GaugeMetricFamily(
            "log_server_healthy",
            "1 while writes succeed (health OK), 0 while DEGRADED",
            value=1 if self.health.ok else 0,
        )
        yield CounterMetricFamily(
            "log_server_write_failures",
            "Write calls that failed (each is retried; nothing accepted is dropped)",
            value=self.writer.failed_writes,
        )
        yield CounterMetricFamily(
            "log_server_rotations",
            "Times the active file was rotated (by size)",
            value=self.sink.rotations,
        )

    def _connections(self, tallies: list[Tally]) -> Iterator[Metric]:
        open_now = GaugeMetricFamily(
            "log_server_connections",
            "Connections open, by listener (grpc: the gRPC port, gRPC-Web and OTLP included)",
            labels=["listener"],
        )
        refused = CounterMetricFamily(
            "log_server_connections_refused",
            "Connections refused past --max_connections, by listener",
            labels=["listener"],
        )
        for tally in tallies:
            if tally.connections is not None:
                open_now.add_metric([tally.source], tally.connections)
            if tally.connections_refused is not None:
                refused.add_metric([tally.source], tally.connections_refused)
        yield open_now
        yield refused

    def _forwarders(self) -> Iterator[Metric]:
        """Each --forward target's lag, as in the health and stats lines."""
        if not self.forwarders:
            return
        lines = GaugeMetricFamily(
            "log_server_forwarder_lag_lines",
            "Lines written but not yet acknowledged by the forward target",
            labels=["forwarder"],
        )
        seconds = GaugeMetricFamily(
            "log_server_forwarder_lag_seconds",
            "How long the oldest line not yet acknowledged has waited",
            labels=["forwarder"],
        )
        for forwarder in self.forwarders:
            lag_lines, lag_seconds = forwarder.lag()
            lines.add_metric([forwarder.name], lag_lines)
            seconds.add_metric([forwarder.name], lag_seconds)
        yield lines
        yield seconds
