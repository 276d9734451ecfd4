"""The server's own events. Each writes one line, through the same sequencer into the
same file as every client's messages, and bumps one counter (which health, the stats
line and the tests all read). Warnings and errors are echoed to stderr as well, so an
operator sees them even while the disk is what is failing (best effort: stderr_echo.py)."""

from __future__ import annotations

import os
import socket
from collections import Counter

from log_server.core.pipeline import LogPipeline
from log_server.core.records import Level, LogRecord
from log_server.health import forward_lag_fields
from log_server.stderr_echo import StderrEcho


class ServerEvents:
    def __init__(self, name: str, pipeline: LogPipeline, echo: StderrEcho | None = None) -> None:
        self.name = name
        self.pipeline = pipeline
        self.counts: Counter[str] = Counter()
        self.echo = echo if echo is not None else StderrEcho()
        self._hostname = socket.gethostname()
        self._pid = str(os.getpid())

    def _emit(self, event: str, level: Level, message: str) -> None:
        self.counts[event] += 1
        record = LogRecord(
            hostname=self._hostname,
            logger_name=self.name,
            module="log_server",
            level=level,
            filename="log_server",
            function_name=event,
            message=message,
            process_id=self._pid,
            process_name="log_server",
        )
        self.pipeline.submit([record])
        if level >= Level.WARNING:
            self.echo.write_line(f"log_server: {level.name.lower()}: {event}: {message}")

    def started(self, version: str, listeners: str, settings: str) -> None:
        self._emit(
            "started", Level.INFO, f"log_server {version} listening on {listeners}; {settings}"
        )

    def stopping(self, signal_name: str) -> None:
        self._emit("stopping", Level.INFO, f"{signal_name} received: draining connections")

    def stopped(self, received: int, queued: int) -> None:
        self._emit(
            "stopped",
            Level.INFO,
            f"intake stopped after {received} messages; writing "
            f"the last {queued} queued lines, then exiting",
        )

    def connection_opened(self, peer: str) -> None:
        self._emit("connection_opened", Level.INFO, f"connection from {peer}")

    def connection_closed(self, peer: str, messages: int, nbytes: int, seconds: float) -> None:
        self._emit(
            "connection_closed",
            Level.INFO,
            f"connection from {peer} closed: messages={messages} bytes={nbytes} "
            f"seconds={seconds:.3f}",
        )

    def signal_ignored(self, signal_name: str, queued: int) -> None:
        self._emit(
            "signal_ignored",
            Level.WARNING,
            f"{signal_name} again while draining: still writing ({queued} lines queued); "
            "a repeated signal stops at once only once writing has stalled for 2 s",
        )

    def reopen_requested(self) -> None:
        self._emit("reopen_requested", Level.INFO, "SIGHUP received: reopening the log files")

    def writer_stopped(self, reason: str) -> None:
        self._emit("writer_stopped", Level.ERROR, f"{reason}; nothing more is written")

    def connection_refused(self, peer: str, limit: int) -> None:
        self._emit(
            "connection_refused",
            Level.WARNING,
            f"refusing connection from {peer}: {limit} connections open (--max_connections)",
        )

    def connections_limited(self, asked: int, allowed: int, open_files: int) -> None:
        self._emit(
            "connections_limited",
            Level.WARNING,
            f"--max_connections {asked} lowered to {allowed} per listener: the open-file "
            f"limit is {open_files} (ulimit -n) and descriptors are kept for the server's "
            "own files",
        )

    def connections_refused_suppressed(self, count: int, seconds: float, limit: int) -> None:
        self._emit(
            "connection_refused",
            Level.WARNING,
            f"refused {count} more connections in the last {seconds:g}s (lines suppressed): "
            f"{limit} connections open (--max_connections)",
        )

    def connection_truncated(self, peer: str, lost: int) -> None:
        self._emit(
            "connection_truncated",
            Level.WARNING,
            f"connection from {peer} closed in the middle of a frame: {lost} bytes of it lost",
        )

    def connection_stalled(self, peer: str, buffered: int, seconds: float) -> None:
        self._emit(
            "connection_stalled",
            Level.WARNING,
            f"closing connection from {peer}: stalled for {seconds:.0f}s in the middle "
            f"of a frame ({buffered} bytes held; --read_timeout)",
        )

    def exposed(self, host: str) -> None:
        self._emit(
            "exposed",
            Level.WARNING,
            f"listening on {host}, which is not a loopback address: anyone who can "
            "reach it can write to this log (there is no authentication)",
        )

    def frame_rejected(self, peer: str, reason: str) -> None:
        self._emit("frame_rejected", Level.ERROR, f"closing connection from {peer}: {reason}")

    def grpc_request_failed(self, method: str, peer: str, reason: str) -> None:
        self._emit("grpc_request_failed", Level.ERROR, f"{method} from {peer}: {reason}")

    def grpc_web_refused(self, peer: str, reason: str, suppressed: int) -> None:
        also = f" ({suppressed} more like this since the last such line)" if suppressed else ""
        self._emit("grpc_web_refused", Level.WARNING, f"gRPC-Web from {peer}: {reason}{also}")

    def write_failed(self, attempt: int, reason: str) -> None:
        self._emit(
            "write_failed", Level.WARNING, f"write attempt {attempt} failed: {reason}; retrying"
        )

    def writes_degraded(self, attempts: int, reason: str) -> None:
        self._emit(
            "writes_degraded",
            Level.ERROR,
            f"{attempts} write attempts failed: {reason}; holding the batch, slowing "
            "intake and retrying until the write succeeds",
        )

    def file_refused(self, reason: str) -> None:
        self._emit(
            "file_refused",
            Level.ERROR,
            f"{reason}; holding every line and retrying until the link is removed",
        )

    def write_recovered(self, attempts: int, seconds: float) -> None:
        self._emit(
            "write_recovered",
            Level.WARNING,
            f"writing again after {attempts} failed attempts over {seconds:.1f}s; nothing was lost",
        )

    def file_rotated(self, rotated_to: str) -> None:
        self._emit("file_rotated", Level.INFO, f"rotated the active file to {rotated_to}")

    def stats(
        self,
        msgs_per_s: float,
        mb_per_s: float,
        queued: int,
        connections: int,
        forward_lag: tuple[int, float] | None = None,
    ) -> None:
        self._emit(
            "stats",
            Level.INFO,
            f"throughput msgs/s={msgs_per_s:.1f} MB/s={mb_per_s:.3f} queued={queued} "
            f"connections={connections}"
            + (forward_lag_fields(forward_lag) if forward_lag is not None else ""),
        )

    def forward_started(self, target: str, from_seq: int, reason: str) -> None:
        self._emit(
            "forward_started", Level.INFO, f"forwarding to {target} from seq {from_seq} ({reason})"
        )

    def forward_unreachable(self, target: str, reason: str) -> None:
        self._emit(
            "forward_unreachable",
            Level.WARNING,
            f"cannot reach Kafka for {target}: {reason}; the lines wait in the log files and "
            "are sent when it is back",
        )

    def forward_reachable(self, target: str, seconds: float) -> None:
        self._emit(
            "forward_reachable",
            Level.WARNING,
            f"Kafka reachable again for {target} after {seconds:.1f}s",
        )

    def forward_failed(self, target: str, reason: str, from_seq: int, delay_s: float) -> None:
        self._emit(
            "forward_failed",
            Level.ERROR,
            f"forwarding to {target} stopped: {reason}; starting again from seq {from_seq} "
            f"in {delay_s:g}s (lines after the checkpoint may reach Kafka twice)",
        )

    def forward_gap(self, target: str, first: int, last: int) -> None:
        self._emit(
            "forward_gap",
            Level.ERROR,
            f"lines {first}..{last} ({last - first + 1} lines) were rotated away before they "
            f"could be forwarded to {target}: they are not in Kafka (--max_files, "
            "--max_file_size keep more)",
        )

    def forward_skipped(self, target: str, seq: int, nbytes: int, reason: str) -> None:
        self._emit(
            "forward_skipped",
            Level.ERROR,
            f"line {seq} ({nbytes} bytes as a record) not forwarded to {target}: {reason}",
        )
