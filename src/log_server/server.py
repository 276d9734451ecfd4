"""The server's lifecycle, as a story: startup -> main_loop -> shutdown."""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from log_server import __version__
from log_server.allocator import keep_freed_memory
from log_server.config import Config, format_size
from log_server.core.format import FORMATTERS
from log_server.core.pipeline import LogPipeline
from log_server.core.sequencer import Sequencer
from log_server.descriptors import plan_descriptors
from log_server.events import ServerEvents
from log_server.health import Health, status_line
from log_server.protocol.connection import (
    decoder_factory,
    native_decoder_available,
    use_native_decoder,
)
from log_server.sinks.log_directory import DirectoryInUse, DirectoryLock, SymlinkRefused
from log_server.sinks.rotating_file import RotatingFileSink
from log_server.sinks.writer import BatchWriter
from log_server.sources.source import ListenError, Source
from log_server.sources.tcp import TcpSource

if TYPE_CHECKING:
    from log_server.forward.supervisor import ForwardSupervisor
    from log_server.metrics.endpoint import MetricsEndpoint

# On SIGTERM/SIGINT a TCP connection is kept open until it has been quiet this long, so
# whatever the client had sent before the signal is read; at most DRAIN_MAX_S in all.
DRAIN_IDLE_S = 0.2
DRAIN_MAX_S = 5.0
# gRPC calls in progress get this long to finish after the signal.
GRPC_GRACE_S = 5.0
# A repeated SIGTERM/SIGINT abandons the drain only when the writer has written nothing for
# this long while lines wait (a disk that fails): a process group killed at once (`timeout`,
# a supervisor, `kill -- -PGID` around `make run`) sends the signal twice within microseconds.
DRAIN_STUCK_S = 2.0
# What is left of the stderr echo gets this long at exit (stderr may be a pipe nobody reads).
ECHO_CLOSE_S = 0.5
# At shutdown the forwarders get this long to have Kafka acknowledge the last lines.
FORWARD_GRACE_S = 3.0
GIL_SWITCH_INTERVAL_S = 0.0005


class StartupError(Exception):
    """The server cannot start (port in use, log directory not writable): one line for
    the operator, no traceback."""


class UnwrittenLinesError(Exception):
    """A second signal cut the shutdown short while lines were still unwritten."""


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.monotonic()
        self.health = Health()
        self._stop = asyncio.Event()
        self._stop_signal = ""
        self._stop_at = 0.0
        self._writer_task: asyncio.Task[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        self.sources: list[Source] = []
        self.metrics: MetricsEndpoint | None = None
        self.forwarders: list[ForwardSupervisor] = []

    async def run(self) -> None:
        await self.startup()
        try:
            await self.main_loop()
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tune_runtime()
        last_seq = self._open_log()
        self._build_pipeline(last_seq)
        self.forwarders = self._build_forwarders()
        self.sources = self._build_sources()
        self._build_metrics()
        listeners = []
        for source in self.sources:
            try:
                listeners.append(await source.start())
            except ListenError as exc:
                self._abandon(str(exc))
        if self.metrics is not None:
            try:
                listeners.append(await self.metrics.start())
            except ListenError as exc:
                self._abandon(str(exc))
        self._start_writer()
        for forwarder in self.forwarders:
            forwarder.start()
        self._handle_signals()
        self._announce_ready(" ".join(listeners))

    def _tune_runtime(self) -> None:
        # The writer thread needs the GIL for a moment after each write; with Python's
        # default 5 ms switch interval it can wait that long for the busy loop thread, and
        # the disk sits idle meanwhile (make bench: about 10% more throughput at 0.5 ms).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        keep_freed_memory()
        if self.config.decoder == "native" and not native_decoder_available():
            raise StartupError(
                "--decoder native: the compiled decoder (log_server_native, built from native/ "
                "by `make test` or `make run`) is not installed"
            )

    def _open_log(self) -> int:
        """Claim the log directory, then open the file set; the last sequence number
        already used."""
        config = self.config
        self.lock = DirectoryLock(config.log_dir)
        try:
            self.lock.acquire()
        except DirectoryInUse as exc:
            raise StartupError(
                f"log directory {config.log_dir} is {exc.strerror}; stop it or choose another "
                "--log_dir"
            ) from None
        except OSError as exc:
            raise StartupError(
                f"cannot write to log directory {config.log_dir}: {_describe(exc)}"
            ) from None
        self.sink = RotatingFileSink(
            config.log_dir, config.max_file_bytes, config.max_files, self._rotated, self.lock
        )
        try:
            last_seq = self.sink.last_sequence()
            self.sink.open()
            if not os.access(config.log_dir, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            self.sink.close()
            self.lock.release()
            raise StartupError(
                f"cannot write to log directory {config.log_dir}: {_describe(exc)}"
            ) from None
        return last_seq

    def _build_pipeline(self, last_seq: int) -> None:
        config = self.config
        self.pipeline = LogPipeline(
            Sequencer(last_seq), FORMATTERS[config.format], config.max_queue_bytes
        )
        self.events = ServerEvents(config.name, self.pipeline)
        observe_write = None
        if config.metrics_port is not None:
            # Imported only when used, as grpc is: the client library costs start-up time.
            from log_server.metrics.collector import new_registry

            self.registry, write_seconds = new_registry()
            observe_write = write_seconds.observe
        self.writer = BatchWriter(
            self.pipeline,
            self.sink,
            self.events,
            self.health,
            fsync=config.fsync,
            fsync_interval_s=config.fsync_interval_s,
            observe_write=observe_write,
        )

    def _build_forwarders(self) -> list[ForwardSupervisor]:
        if not self.config.forward:
            return []
        # Imported only when used; each forwarder runs in its own process (forward/child.py).
        from log_server.forward.checkpoint import CheckpointError
        from log_server.forward.supervisor import ForwardSupervisor

        if importlib.util.find_spec("confluent_kafka") is None:
            self._abandon("--forward needs the Kafka client confluent-kafka (pip install it)")
        pipeline = self.pipeline
        try:
            return [
                ForwardSupervisor(
                    target,
                    self.config.log_dir,
                    self.config.name,
                    lambda: pipeline.written_seq,
                    self.events,
                )
                for target in self.config.forward
            ]
        except CheckpointError as exc:
            self._abandon(str(exc))

    def forward_lag(self) -> tuple[int, float] | None:
        """The largest lag of the forwarders, or None without any."""
        lags = [forwarder.lag() for forwarder in self.forwarders]
        return (max(lag[0] for lag in lags), max(lag[1] for lag in lags)) if lags else None

    def _build_sources(self) -> list[Source]:
        config = self.config
        self.descriptors = plan_descriptors(config.max_connections, 1 if config.tcp_only else 2)
        if self.descriptors.lowered(config.max_connections):
            self.events.connections_limited(
                config.max_connections,
                self.descriptors.max_connections,
                self.descriptors.soft_limit,
            )
        max_connections = self.descriptors.max_connections
        sources: list[Source] = [
            TcpSource(
                self.pipeline,
                self.events,
                decoder_factory(
                    config.decoder, config.max_frame_bytes, config.format, config.max_line_bytes
                ),
                self.status_line,
                config.host,
                config.port,
                config.unix_socket,
                max_connections,
                config.read_timeout_s,
                DRAIN_IDLE_S,
                DRAIN_MAX_S,
            )
        ]
        if not config.tcp_only:
            # Imported only when used: grpc and protobuf cost memory and start-up time.
            from log_server.protocol.grpc_web import Policy
            from log_server.protocol.otlp import native_decoder as otlp_decoder
            from log_server.protocol.proto_codec import batch_decoder
            from log_server.sources.grpc import GrpcSource

            use_native = use_native_decoder(config.decoder)
            decode_batch = batch_decoder(use_native, config.format)
            web = (
                Policy(config.cors_origins, config.allowed_hosts, config.grpc_max_request_bytes)
                if config.grpc_web
                else None
            )
            sources.append(
                GrpcSource(
                    self.pipeline,
                    self.events,
                    self.health,
                    decode_batch,
                    config.host,
                    config.grpc_port,
                    GRPC_GRACE_S,
                    web,
                    max_connections,
                    config.read_timeout_s,
                    max_batch=config.grpc_max_batch,
                    max_request_bytes=config.grpc_max_request_bytes,
                    max_calls=config.grpc_max_calls,
                    decode_otlp=otlp_decoder(use_native, config.format),
                )
            )
        return sources

    def _build_metrics(self) -> None:
        """--metrics_port: /metrics reads the counters of everything built so far."""
        config = self.config
        if config.metrics_port is None:
            return
        from log_server.metrics.collector import ServerCollector
        from log_server.metrics.endpoint import MetricsEndpoint

        self.registry.register(
            ServerCollector(
                __version__,
                self._decoder_in_use(),
                self.pipeline,
                self.writer,
                self.sink,
                self.sources,
                self.health,
                self.events,
                self.forwarders,
            )
        )
        self.metrics = MetricsEndpoint(self.registry, config.host, config.metrics_port)

    def _start_writer(self) -> None:
        self._writer_task = asyncio.create_task(self.writer.run())
        self._writer_task.add_done_callback(self._writer_ended)
        if self.config.fsync == "interval":
            self._syncer = asyncio.create_task(self.writer.sync_periodically())

    def _handle_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        self._loop.add_signal_handler(signal.SIGHUP, self._on_hangup)

    def _announce_ready(self, listeners: str) -> None:
        config = self.config
        self.events.started(__version__, listeners, self._settings())
        if not _is_loopback(config.host):
            self.events.exposed(config.host)
        print(f"log_server ready {listeners} log_dir={config.log_dir}", flush=True)

    def _abandon(self, reason: str) -> NoReturn:
        """Undo what startup did so far, then fail with one line for the operator."""
        for source in self.sources:
            source.stop_accepting()
        if self.metrics is not None:
            self.metrics.stop_accepting()
        self.sink.close()
        self.lock.release()
        raise StartupError(reason)

    async def main_loop(self) -> None:
        """Wait for a signal, writing a throughput line every --stats_interval seconds."""
        interval = self.config.stats_interval_s or None
        last_time, last_written, last_bytes = time.monotonic(), 0, 0
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
            except TimeoutError:
                now = time.monotonic()
                elapsed = max(now - last_time, 1e-9)
                written, nbytes = self.pipeline.written, self.writer.bytes_written
                self.events.stats(
                    (written - last_written) / elapsed,
                    (nbytes - last_bytes) / elapsed / 1e6,
                    self.pipeline.queued_lines,
                    self.connection_count,
                    self.forward_lag(),
                )
                last_time, last_written, last_bytes = now, written, nbytes

    async def shutdown(self) -> None:
        """Stop accepting, read what clients already sent, write everything accepted, fsync."""
        self.events.stopping(self._stop_signal or "shutdown")
        for source in self.sources:
            source.stop_accepting()
        await asyncio.gather(*(source.drain() for source in self.sources))
        self.events.stopped(self.pipeline.received, self.pipeline.queued_lines)
        self.pipeline.close()
        if self._syncer is not None:
            self._syncer.cancel()
        assert self._writer_task is not None
        try:
            await self._writer_task
        except asyncio.CancelledError:
            unwritten = self.pipeline.queued_lines
            print(
                f"log_server: error: stopped by a second signal with {unwritten} accepted "
                "lines not written",
                file=sys.stderr,
                flush=True,
            )
            raise UnwrittenLinesError(unwritten) from None
        finally:
            try:
                self.sink.fsync()
            except OSError:
                pass
            if self.metrics is not None:
                await self.metrics.close()
            await asyncio.gather(*(f.stop(FORWARD_GRACE_S) for f in self.forwarders))
            self.sink.close()
            self.lock.release()
            self.events.echo.close(ECHO_CLOSE_S)

    def status_line(self) -> str:
        return status_line(
            self.config.name,
            self.health,
            time.monotonic() - self.started_at,
            self.pipeline.received,
            self.pipeline.written,
            self.pipeline.queued_lines,
            self.connection_count,
            self.forward_lag(),
        )

    @property
    def connection_count(self) -> int:
        return sum(source.connection_count for source in self.sources)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stop.is_set():
            self._stop_signal = sig.name
            self._stop_at = time.monotonic()
            self._stop.set()
            return
        queued = self.pipeline.queued_lines
        stuck_s = time.monotonic() - max(self.writer.last_write_at, self._stop_at)
        if queued and stuck_s >= DRAIN_STUCK_S and self._writer_task is not None:
            self._writer_task.cancel()
        else:
            self.events.signal_ignored(sig.name, queued)

    def _on_hangup(self) -> None:
        """SIGHUP, the logrotate convention: reopen the files by name before the next write
        (one already renamed away is left to its new owner)."""
        self.sink.request_reopen()
        self.events.reopen_requested()

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """The writer only ends when the pipeline is closed and empty; if a bug ends it
        sooner, health must not go on saying OK while nothing is written."""
        if task.cancelled() or task.exception() is None:
            return
        reason = f"the writer stopped: {task.exception()!r}"
        self.health.set_degraded(reason)
        self.events.writer_stopped(reason)

    def _rotated(self, rotated_to: object) -> None:
        """Called on the writer thread: hand the event to the loop."""
        self._loop.call_soon_threadsafe(self.events.file_rotated, str(rotated_to))

    def _settings(self) -> str:
        c = self.config
        return (
            f"log_dir={c.log_dir} format={c.format} max_file_size={format_size(c.max_file_bytes)} "
            f"max_files={c.max_files} max_frame_size={format_size(c.max_frame_bytes)} "
            f"max_line_size={format_size(c.max_line_bytes)} "
            f"max_queue_bytes={format_size(c.max_queue_bytes)} "
            f"stats_interval={c.stats_interval_s:g}s tcp_only={c.tcp_only} grpc_web={c.grpc_web} "
            f"max_connections={self.descriptors.max_connections} "
            f"open_files={self.descriptors.soft_limit} read_timeout={c.read_timeout_s:g}s "
            f"fsync={c.fsync}{f' every {c.fsync_interval_s:g}s' if c.fsync == 'interval' else ''} "
            f"decoder={self._decoder_in_use()}" + "".join(f" forward={t.url}" for t in c.forward)
        )

    def _decoder_in_use(self) -> str:
        decoder = self.config.decoder
        if decoder == "auto":
            return "native" if native_decoder_available() else "python (native not installed)"
        return decoder


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(exc: OSError) -> str:
    if isinstance(exc, SymlinkRefused):
        return f"{exc.filename} {exc.strerror}"
    return os.strerror(exc.errno) if exc.errno else str(exc)
