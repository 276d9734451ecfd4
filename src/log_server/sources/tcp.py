"""TCP listener (and the same protocol on a Unix socket): a thin adapter that feeds each
connection's bytes to its decoder and submits the lines that come out. A peer error is one
log line and a close."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from log_server.core.clock import now_iso
from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.protocol.acknowledged import ACK_HELLO, AckCounter, Opening
from log_server.protocol.connection import DecoderFactory, StopKind

# A read this large means more is waiting: let the other connections and the writer run.
YIELD_AFTER_BYTES = 64 * 1024


class TcpConnection(asyncio.Protocol):
    def __init__(self, source: TcpSource) -> None:
        self.source = source
        self.decoder = source.new_decoder()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.messages = 0
        self.bytes_received = 0
        self.last_data_at = self.opened_at = time.monotonic()
        self._announced = False
        self._started = False  # has the frame stream (after any ACK_HELLO) begun?
        self._opening: Opening | None = Opening()
        self._acks: AckCounter | None = None
        self._close_when_acked = False
        self._quiet = False  # health probes and refused connections write no open/close lines
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        else:  # a Unix socket: name the socket (its peers have no address)
            self.peer = f"unix:{self.transport.get_extra_info('sockname')}"
        if len(self.source.connections) >= self.source.max_connections:
            self._quiet = True
            self.source.events.connection_refused(self.peer, self.source.max_connections)
            self.transport.abort()
            return
        self.source.connections.add(self)
        self.source.pipeline.register(self)

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self.last_data_at = time.monotonic()
        if self._opening is not None:
            data = self._open(data)
            if not data:
                return
        if not self._started:
            self._started = True
            # The "opened" line comes before the connection's first message, unless this may
            # be a health probe (only those start with "h": no frame length can).
            if not data.startswith(b"h"):
                self._announce()
        pipeline = self.source.pipeline
        lines, count, stop = self.decoder.feed(data, pipeline.next_seq, now_iso())
        if count:
            pipeline.submit_formatted(lines, count)
            if len(data) >= YIELD_AFTER_BYTES:
                self._yield_to_others()
            self.messages += count
            if self._acks is not None:
                self._acks.accept(pipeline.sequencer.last_issued, count)
        if stop is None:
            return
        if stop.kind is StopKind.HEALTH:
            self._quiet = True
            self._answer_health()
            return
        self._announce()
        self.source.events.frame_rejected(self.peer, stop.reason)
        self.close()

    def _open(self, data: bytes) -> bytes:
        """The bytes of the frame stream, once the opening is decided."""
        assert self._opening is not None
        opened = self._opening.feed(data)
        if opened is None:
            return b""
        self._opening = None
        if opened.acknowledged:
            assert self.transport is not None
            self.transport.write(ACK_HELLO)
            self._acks = AckCounter()
            self.source.pipeline.add_durable_listener(self._durable)
        return opened.frames

    def _durable(self, seq: int) -> None:
        """Tell an acknowledged client how many of its messages are on disk now."""
        assert self._acks is not None
        if self.transport is None or self.transport.is_closing():
            return
        ack = self._acks.durable(seq)
        if ack is not None:
            self.transport.write(ack)
        if self._close_when_acked and not self._acks.owed:
            self.close()

    def eof_received(self) -> bool:
        """A client that half-closes an acknowledged connection still gets the acks for
        what it sent: the connection stays open for writing until they are sent."""
        if self._acks is not None and self._acks.owed:
            self._close_when_acked = True
            return True
        return False

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            self.source.events.connection_opened(self.peer)

    def _answer_health(self) -> None:
        assert self.transport is not None
        self.transport.write(self.source.status_line().encode())
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._acks is not None:
            self.source.pipeline.remove_durable_listener(self._durable)
        self.source.connections.discard(self)
        self.source.pipeline.unregister(self)
        if not self._quiet:
            self.source.events.connection_closed(
                self.peer, self.messages, self.bytes_received, time.monotonic() - self.opened_at
            )

    def _yield_to_others(self) -> None:
        """Stop reading until the next loop iteration. The event loop (libuv) reads a busy
        socket up to 32 times before it looks at anything else, so at full load one
        iteration took tens of milliseconds, and the writer, whose batches complete by a
        callback, fell behind until the queue hit its bound (make bench: 66 MB queued, then
        pauses). Yielding after each large read keeps the queue at about one batch."""
        if self.transport is not None and not self.paused:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        if self.transport is not None and not self.paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()


class TcpSource:
    def __init__(
        self,
        pipeline: LogPipeline,
        events: ServerEvents,
        new_decoder: DecoderFactory,
        status_line: Callable[[], str],
        max_connections: int = 1024,
        read_timeout_s: float = 0.0,
    ) -> None:
        self.pipeline = pipeline
        self.events = events
        self.new_decoder = new_decoder
        self.status_line = status_line
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self._sweeper: asyncio.Task[None] | None = None
        self.connections: set[TcpConnection] = set()
        self._servers: list[asyncio.Server] = []
        self._unix_path: Path | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind and listen; returns the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: TcpConnection(self), host, port, reuse_address=True, backlog=1024
        )
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        if self.read_timeout_s:
            self._sweeper = loop.create_task(self._close_stalled())
        return sockname[0], sockname[1]

    async def start_unix(self, path: Path) -> None:
        """The same protocol on a Unix socket with mode 0660, so that file permissions
        decide who may log on a shared machine. A stale socket file is replaced."""
        _remove_stale_socket(path)
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(lambda: TcpConnection(self), str(path), backlog=1024)
        os.chmod(path, 0o660)
        self._servers.append(server)
        self._unix_path = path

    async def _close_stalled(self) -> None:
        """Slowloris guard: a connection that stopped in the middle of a frame is closed
        after --read_timeout; one that is idle between frames is left alone."""
        interval = min(1.0, self.read_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections):
                buffered = connection.decoder.buffered_bytes
                stalled_s = now - connection.last_data_at
                if buffered and stalled_s >= self.read_timeout_s and not connection.paused:
                    self.events.connection_stalled(connection.peer, buffered, stalled_s)
                    connection.close()

    def stop_accepting(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        if self._unix_path is not None:
            _remove_stale_socket(self._unix_path)

    async def drain(self, idle_s: float, max_s: float) -> None:
        """Read what the clients have already sent: keep connections open until each has
        been quiet for `idle_s` (or closed), at most `max_s` in all, then close them."""
        deadline = time.monotonic() + max_s
        while self.connections and time.monotonic() < deadline:
            now = time.monotonic()
            busy = [c for c in self.connections if now - c.last_data_at < idle_s]
            if not busy and self.pipeline.has_room:
                break
            await asyncio.sleep(min(idle_s / 4, 0.05))
        for connection in list(self.connections):
            connection.close()
        for server in self._servers:
            await server.wait_closed()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file (never a regular file someone pointed us at by mistake)."""
    if path.is_socket():
        path.unlink()
