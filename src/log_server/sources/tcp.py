"""TCP listener (and the same protocol on a Unix socket): a thin adapter that feeds each
connection's bytes to its decoder and submits the lines that come out. A peer error is one
log line and a close."""

from __future__ import annotations

import asyncio
import collections
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from log_server.core.clock import now_iso
from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.protocol.connection import DecoderFactory
from log_server.protocol.framing import HEALTH_WORD

# Sent by a client as the first bytes of a connection to ask for acknowledgements
# (docs/protocol.md). Read as a frame length, "LSAC" is above any allowed frame limit, so
# the word cannot be mistaken for a frame, and existing clients never send it.
ACK_HELLO = b"LSACKv1\n"
_ack = struct.Struct(">Q").pack
# A read this large means more is waiting: let the other connections and the writer run.
YIELD_AFTER_BYTES = 64 * 1024
# Connections past --max_connections that are kept open just long enough to see whether
# they are a health probe, so that health can be asked while the server is full. Their
# descriptors are part of descriptors.RESERVED_DESCRIPTORS.
HEALTH_SLOTS = 8
HEALTH_SLOT_WAIT_S = 1.0
# At most one "refusing connection" line per interval, then one line with the count of
# those not written (rsyslog's imuxsock rate limit uses the same 5 s interval).
REFUSAL_LOG_INTERVAL_S = 5.0


class RefusalLog:
    """Rate limit for refusal lines: the first refusal of an interval is logged, the others
    only counted, and the count is reported once the interval is over. Pure: the caller
    passes the time, so a test steps through it without sleeping."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.suppressed = 0
        self.window_ends: float | None = None

    def refused(self, now: float) -> bool:
        """A connection was refused: True when this one is to be logged (and the caller
        calls `window_over` at `now + interval_s`)."""
        if self.window_ends is None:
            self.window_ends = now + self.interval_s
            return True
        self.suppressed += 1
        return False

    def window_over(self, now: float) -> int:
        """The interval is over: how many refusals were not logged. When there were some,
        a new interval starts (call again at `window_ends`), so a continuing flood gives
        one line per interval."""
        count, self.suppressed = self.suppressed, 0
        self.window_ends = now + self.interval_s if count else None
        return count


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
        self._head: bytes | None = b""  # the connection's first bytes, until ACK_HELLO is ruled out
        self._ack_marks: collections.deque[tuple[int, int]] | None = None
        self._acked = 0
        self._quiet = False  # health probes and refused connections write no open/close lines
        self.paused = False
        self._reads = 0
        self._probe = False
        self._yielding = False
        # A read that arrived while intake is paused, kept undecoded until there is room.
        self._held: bytes | None = None
        self._health_slot = False  # opened past --max_connections: a health probe or refused
        self._slot_head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        else:  # a Unix socket: name the socket (its peers have no address)
            self.peer = f"unix:{self.transport.get_extra_info('sockname')}"
        source = self.source
        if len(source.connections) >= source.max_connections:
            self._quiet = True
            if len(source.health_slots) >= HEALTH_SLOTS:
                self._refuse()
                return
            # Kept open for a moment: it may be a health probe, answered even when full.
            self._health_slot = True
            source.health_slots.add(self)
            asyncio.get_running_loop().call_later(HEALTH_SLOT_WAIT_S, self._refuse)
            return
        source.connections.add(self)
        source.pipeline.register(self)

    def _refuse(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.source.refused(self.peer)
            self.transport.abort()

    def _probe_in_health_slot(self, data: bytes) -> None:
        """Past --max_connections, only the health word is answered."""
        self._slot_head += data
        head = self._slot_head[: len(HEALTH_WORD)]
        if head == HEALTH_WORD:
            self._answer_health()
        elif not HEALTH_WORD.startswith(head):
            self._refuse()

    def data_received(self, data: bytes) -> None:
        if self._health_slot:
            self._probe_in_health_slot(data)
            return
        self.bytes_received += len(data)
        self.last_data_at = time.monotonic()
        self._reads += 1
        if self._reads == 1:
            # Only a health probe starts with "h" (no frame length or ACK_HELLO can), and
            # it never produces lines: it is read even while intake is paused.
            self._probe = data.startswith(b"h")
        if self.paused and not self._probe:
            # Intake is paused: keep the read as it is, stop reading, and decode it once
            # there is room.
            assert self.transport is not None
            self._held = data if self._held is None else self._held + data
            self.transport.pause_reading()
            return
        self._process(data)

    def _process(self, data: bytes) -> None:
        if self._head is not None:
            data = self._opening(data)
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
            if self._ack_marks is not None:
                self._ack_marks.append((pipeline.sequencer.last_issued, self.messages))
        if stop is None:
            return
        kind, reason = stop
        if kind == "health":
            self._quiet = True
            self._answer_health()
            return
        self._announce()
        self.source.events.frame_rejected(self.peer, reason)
        self.close()

    def _opening(self, data: bytes) -> bytes:
        """Before the first frame: is this an acknowledged connection? Returns the bytes
        that belong to the frame stream."""
        assert self._head is not None
        head = self._head + data
        if len(head) < len(ACK_HELLO) and ACK_HELLO.startswith(head):
            self._head = head
            return b""
        self._head = None
        if not head.startswith(ACK_HELLO):
            return head
        assert self.transport is not None
        self.transport.write(ACK_HELLO)
        self._ack_marks = collections.deque()
        self.source.pipeline.add_durable_listener(self._durable)
        return head[len(ACK_HELLO) :]

    def _durable(self, seq: int) -> None:
        """Tell an acknowledged client how many of its messages are on disk now."""
        marks = self._ack_marks
        assert marks is not None
        count = self._acked
        while marks and marks[0][0] <= seq:
            count = marks.popleft()[1]
        if count > self._acked and self.transport is not None and not self.transport.is_closing():
            self._acked = count
            self.transport.write(_ack(count))

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
        if self._health_slot:
            self.source.health_slots.discard(self)
            return
        if self._ack_marks is not None:
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
            self._yielding = True
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        self._yielding = False
        if self.transport is not None and not self.paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def pause_reading(self) -> None:
        """Stop reading. A connection that has not sent anything yet is paused by its
        first read instead (`data_received`): uvloop starts reading only after
        `connection_made`, ignoring a pause asked for there, and a health probe must still
        get its answer while intake is paused."""
        if self.transport is not None and not self.paused:
            self.paused = True
            if self._reads:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            if self._held is not None:
                asyncio.get_running_loop().call_soon(self._release_held)
            elif not self.transport.is_closing():
                self.transport.resume_reading()

    def _release_held(self) -> None:
        """Decode the read held while paused, then read on unless that filled the queue."""
        held, self._held = self._held, None
        if held is None or self.transport is None or self.transport.is_closing():
            return
        if self.paused:
            self._held = held
            return
        self._process(held)
        if not (self.paused or self._yielding or self.transport.is_closing()):
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
        self.health_slots: set[TcpConnection] = set()
        self._refusals = RefusalLog()
        self._servers: list[asyncio.Server] = []
        self._unix_path: Path | None = None

    def refused(self, peer: str) -> None:
        """A connection past --max_connections was refused: one line per interval."""
        loop = asyncio.get_running_loop()
        if self._refusals.refused(loop.time()):
            self.events.connection_refused(peer, self.max_connections)
            loop.call_later(self._refusals.interval_s, self._refusal_window_over)

    def _refusal_window_over(self) -> None:
        loop = asyncio.get_running_loop()
        suppressed = self._refusals.window_over(loop.time())
        if suppressed:
            self.events.connections_refused_suppressed(
                suppressed, self._refusals.interval_s, self.max_connections
            )
            loop.call_later(self._refusals.interval_s, self._refusal_window_over)

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
        for connection in [*self.connections, *self.health_slots]:
            connection.close()
        for server in self._servers:
            await server.wait_closed()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file (never a regular file someone pointed us at by mistake)."""
    if path.is_socket():
        path.unlink()
