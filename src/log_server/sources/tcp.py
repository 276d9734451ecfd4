"""TCP listener (and the same protocol on a Unix socket): a thin adapter that feeds each
connection's bytes to its decoder and submits the lines that come out. A peer error is one
log line and a close."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import cast

from log_server.core.clock import now_iso
from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.protocol.acknowledged import ACK_HELLO, AckCounter, Opening
from log_server.protocol.connection import DecoderFactory, StopKind
from log_server.protocol.framing import HEALTH_WORD
from log_server.protocol.hello import GreetingReader, MalformedHello
from log_server.sources.source import ListenError, Tally

# How long start-up waits for a socket file's owner to answer before calling it alive.
LIVE_SOCKET_PROBE_S = 1.0
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
        self.listener = "tcp"  # or "unix"
        self.messages = 0
        self.bytes_received = 0
        # Bytes for the stall guard; messages (and partial frames) for the drain, to which
        # the original clients' keep-alives are no activity.
        self.last_data_at = self.last_message_at = self.opened_at = time.monotonic()
        self._announced = False
        self._started = False  # has the frame stream (after any HelloMsg, ACK_HELLO) begun?
        self._greeting: GreetingReader | None = GreetingReader()
        self._opening: Opening | None = Opening()
        self._reason_logged = False  # a line already says why it closed (no truncation line)
        self._acks: AckCounter | None = None
        self._close_when_acked = False
        self._quiet = False  # health probes and refused connections write no open/close lines
        self.paused = False
        self._read_once = False  # has data_received run? (pausing before it is ignored)
        self._first_byte = b""
        self._held: list[bytes] = []  # read while paused, decoded once intake resumes
        self._health_slot = False  # opened past --max_connections: a health probe or refused
        self._slot_head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        else:  # a Unix socket: name the socket (its peers have no address)
            self.peer = f"unix:{self.transport.get_extra_info('sockname')}"
            self.listener = "unix"
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
            self.source.connections_refused[self.listener] += 1
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
        if not self._read_once:
            self._read_once = True
            self._first_byte = data[:1]
        if self.paused and not self._may_be_health_probe():
            self._hold(data)
            return
        self._consume(data)

    def _may_be_health_probe(self) -> bool:
        """A connection that starts with "h" asks for health (or is garbage): it can carry
        no frames, as "heal" read as a length is above any frame limit, so reading it
        costs nothing and a probe is answered while intake is paused."""
        return self._first_byte == b"h"

    def _hold(self, data: bytes) -> None:
        """A read that came while intake is paused: keep it, undecoded, and stop reading.
        uvloop starts reading after connection_made, so a connection opened while paused
        gets this one read (at most the loop's read size) before the pause takes effect."""
        self._held.append(data)
        assert self.transport is not None
        self.transport.pause_reading()

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet decoded into messages (0 between frames)."""
        held = sum(map(len, self._held))
        greeting = self._greeting.buffered_bytes if self._greeting is not None else 0
        return held + greeting + self.decoder.buffered_bytes

    def _consume(self, data: bytes) -> None:
        if self._greeting is not None:
            data = self._greet(data)
            if not data:
                return
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
        if count or self.decoder.buffered_bytes:
            self.last_message_at = self.last_data_at
        if stop is None:
            return
        if stop.kind is StopKind.HEALTH:
            self._quiet = True
            self._answer_health()
            return
        self._reject(stop.reason)

    def _reject(self, reason: str) -> None:
        self._announce()
        self._reason_logged = True
        self.source.frames_refused[self.listener] += 1
        self.source.events.frame_rejected(self.peer, reason)
        self.close()

    def _greet(self, data: bytes) -> bytes:
        """The bytes after the connection's HelloMsg, once it is known whether it sent one
        (the original project's newer clients do; docs/protocol.md). The hello is neither
        written nor counted; its name and host become the connection's name in the server's
        own lines."""
        assert self._greeting is not None
        greeting = self._greeting.feed(data)
        if greeting is None:
            return b""
        self._greeting = None
        hello = greeting.hello
        if isinstance(hello, MalformedHello):
            self._reject(f"malformed HelloMsg: {hello.reason}")
            return b""
        if hello is not None:
            self.peer = hello.identity(self.peer)
            self._announce()
        return greeting.rest

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

    def stalled(self) -> None:
        """Closed by the stall guard, whose line already says what was held."""
        self._reason_logged = True
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._health_slot:
            self.source.health_slots.discard(self)
            return
        if self._acks is not None:
            self.source.pipeline.remove_durable_listener(self._durable)
        if self._held and not self._quiet:
            held, self._held = b"".join(self._held), []
            self._consume(held)  # read while paused: decoded, not lost with the connection
        self.source.connections.discard(self)
        self.source.pipeline.unregister(self)
        self.source.closed_messages[self.listener] += self.messages
        if self._quiet:
            return
        lost = self.buffered_bytes
        if lost and not self._reason_logged:
            self.source.events.connection_truncated(self.peer, lost)
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
            if self._read_once:  # before the first read, uvloop ignores it: see _hold
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            if self._held:
                # Later: the pipeline is resuming every producer; decoding now could
                # fill the queue again in the middle of that.
                asyncio.get_running_loop().call_soon(self._release_held)
            else:
                self.transport.resume_reading()

    def _release_held(self) -> None:
        if self.paused or self.transport is None or self.transport.is_closing():
            return
        held, self._held = b"".join(self._held), []
        self._consume(held)
        if not self.paused and not self.transport.is_closing():
            self.transport.resume_reading()


class TcpSource:
    """The TCP listener and, with --unix_socket, the same protocol on a Unix socket: one set
    of connections under one --max_connections."""

    def __init__(
        self,
        pipeline: LogPipeline,
        events: ServerEvents,
        new_decoder: DecoderFactory,
        status_line: Callable[[], str],
        host: str = "127.0.0.1",
        port: int = 0,
        unix_socket: Path | None = None,
        max_connections: int = 1024,
        read_timeout_s: float = 0.0,
        drain_idle_s: float = 0.2,
        drain_max_s: float = 5.0,
    ) -> None:
        self.pipeline = pipeline
        self.events = events
        self.new_decoder = new_decoder
        self.status_line = status_line
        self.host, self.port, self.unix_socket = host, port, unix_socket
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self.drain_idle_s, self.drain_max_s = drain_idle_s, drain_max_s
        self._sweeper: asyncio.Task[None] | None = None
        self.connections: set[TcpConnection] = set()
        self.health_slots: set[TcpConnection] = set()
        # By listener ("tcp", "unix"): the messages of closed connections (open ones count
        # their own), frames refused, connections refused past --max_connections.
        self.closed_messages: Counter[str] = Counter()
        self.frames_refused: Counter[str] = Counter()
        self.connections_refused: Counter[str] = Counter()
        self._refusals = RefusalLog()
        self._servers: list[asyncio.Server] = []
        self._unix_path: Path | None = None
        self._unix_identity = (0, 0)

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    def tallies(self) -> list[Tally]:
        received = Counter(self.closed_messages)
        open_now: Counter[str] = Counter()
        for connection in self.connections:
            received[connection.listener] += connection.messages
            open_now[connection.listener] += 1
        listeners = ["tcp", "unix"] if self.unix_socket is not None else ["tcp"]
        return [
            Tally(
                listener,
                received[listener],
                self.frames_refused[listener],
                open_now[listener],
                self.connections_refused[listener],
            )
            for listener in listeners
        ]

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

    async def start(self) -> str:
        """Bind and listen (port 0 picks a free one); the bound addresses."""
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: TcpConnection(self), self.host, self.port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise ListenError(f"TCP {self.host}:{self.port}", exc) from None
        self._servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        listeners = f"tcp=[{host}]:{port}" if ":" in host else f"tcp={host}:{port}"
        if self.unix_socket is not None:
            try:
                await self._start_unix(self.unix_socket)
            except OSError as exc:
                raise ListenError(f"Unix socket {self.unix_socket}", exc) from None
            listeners += f" unix={self.unix_socket}"
        if self.read_timeout_s:
            self._sweeper = loop.create_task(self._close_stalled())
        return listeners

    async def _start_unix(self, path: Path) -> None:
        """The same protocol on a Unix socket with mode 0660, so that file permissions
        decide who may log on a shared machine. A stale socket file is replaced; one that
        answers belongs to a live server and is left alone (the start fails)."""
        _remove_stale_socket(path)
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(lambda: TcpConnection(self), str(path), backlog=1024)
        self._servers.append(server)
        created = os.lstat(path)
        self._unix_identity = (created.st_dev, created.st_ino)
        self._unix_path = path
        os.chmod(path, 0o660)

    async def _close_stalled(self) -> None:
        """Slowloris guard: a connection that stopped in the middle of a frame is closed
        after --read_timeout; one that is idle between frames is left alone."""
        interval = min(1.0, self.read_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections):
                buffered = connection.buffered_bytes
                stalled_s = now - connection.last_data_at
                if buffered and stalled_s >= self.read_timeout_s and not connection.paused:
                    self.events.connection_stalled(connection.peer, buffered, stalled_s)
                    connection.stalled()

    def stop_accepting(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        if self._unix_path is not None:
            _remove_own_socket(self._unix_path, self._unix_identity)
            self._unix_path = None

    async def drain(self) -> None:
        """Read what the clients have already sent: keep connections open until none has
        sent a message for `drain_idle_s` or holds part of a frame (or all are closed), at
        most `drain_max_s` in all, then close them. Keep-alives are not messages: a client
        that only keeps its connection alive does not hold the drain up."""
        idle_s = self.drain_idle_s
        deadline = time.monotonic() + self.drain_max_s
        while self.connections and time.monotonic() < deadline:
            now = time.monotonic()
            busy = [
                c for c in self.connections if now - c.last_message_at < idle_s or c.buffered_bytes
            ]
            if not busy and self.pipeline.has_room:
                break
            await asyncio.sleep(min(idle_s / 4, 0.05))
        for connection in [*self.connections, *self.health_slots]:
            connection.close()
        for server in self._servers:
            await server.wait_closed()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on (never a regular file someone pointed us at
    by mistake, nor a link). A socket that answers a connect is a live server's: raise
    EADDRINUSE rather than take its path over."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return  # bind refuses it: "Address already in use"
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(LIVE_SOCKET_PROBE_S)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
            return
        except TimeoutError:
            pass  # listening, with a full backlog: alive
    raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE), str(path))


def _remove_own_socket(path: Path, identity: tuple[int, int]) -> None:
    """On stop: remove the socket file only if it is still the one this server created
    (another server may have taken the path since)."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == identity:
        path.unlink(missing_ok=True)
