"""The front listener of the gRPC port: native gRPC and gRPC-Web on one port.

Browsers speak gRPC-Web over HTTP/1.1, which grpcio does not serve. Every connection to the
gRPC port is accepted here; one that opens with the HTTP/2 preface is native gRPC and is
relayed, byte for byte, to grpcio listening on a Unix socket in a private directory; any
other is HTTP/1.1 and served as gRPC-Web (protocol/grpc_web.py) through the same decoder,
limits and pipeline as native gRPC (sources/grpc.py). OTLP/HTTP logs (`POST /v1/logs`) are
served on the same HTTP/1.1 side, by the rules of native OTLP Export (sources/otlp.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from log_server.core.clock import now_iso
from log_server.events import ServerEvents
from log_server.protocol.grpc_web import (
    PREFACE,
    Call,
    Closed,
    GrpcStatus,
    GrpcWebConnection,
    OtlpCall,
    Policy,
    Refused,
)
from log_server.protocol.otlp_http import (
    OtlpHttpError,
    decompressed,
    error_response,
    export_response,
    is_json,
    request_from_json,
)
from log_server.protocol.proto_codec import batch_pieces
from log_server.sources.grpc import _ACCEPTED, LogServiceHandler, as_batch
from log_server.sources.otlp import OtlpLogsHandler

# A refusal of each kind writes one line at most this often; the next line says how many
# were refused in between (a browser page in a loop must not flood the log with its errors).
REFUSAL_LOG_INTERVAL_S = 10.0
# After a refusal that closes the connection, what the client still sends is read and
# dropped for at most this long and this much, so that the refusal reaches it (nginx:
# lingering_time 30 s, lingering_timeout 5 s).
LINGER_S = 2.0
LINGER_MAX_BYTES = 8 * 1024 * 1024
# Above this many bytes queued towards a slow reader, the other side stops being read
# (asyncio's default high-water mark is 64 KiB).
RELAY_HIGH_WATER_BYTES = 256 * 1024


class RefusalLog:
    """Rate-limits refusal lines per kind; each refusal still counts in `refused`."""

    def __init__(
        self,
        events: ServerEvents,
        interval_s: float = REFUSAL_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.interval_s = interval_s
        self.clock = clock
        self.refused = 0
        self.refused_by_kind: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def refuse(self, peer: str, kind: str, reason: str) -> None:
        self.refused += 1
        self.refused_by_kind[kind] += 1
        now = self.clock()
        last = self._last_logged.get(kind)
        if last is not None and now - last < self.interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last_logged[kind] = now
        self.events.grpc_web_refused(peer, reason, self._suppressed.pop(kind, 0))

    @property
    def connections_refused(self) -> int:
        """Connections past --max_connections on the gRPC port."""
        return self.refused_by_kind["connections"]

    @property
    def calls_refused(self) -> int:
        """gRPC-Web requests refused (relay failures to native gRPC are not theirs)."""
        return self.refused - self.connections_refused - self.refused_by_kind["relay"]


class _Relay(asyncio.Protocol):
    """One direction's reader: what it reads is written to `peer`, with flow control."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(RELAY_HIGH_WATER_BYTES)

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()


class FrontConnection(asyncio.Protocol):
    """Sniffs the first bytes, then either relays (native gRPC) or serves gRPC-Web."""

    def __init__(self, front: GrpcWebFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.last_data_at = time.monotonic()
        self._opening = b""
        self._web: GrpcWebConnection | None = None
        self._upstream: asyncio.Transport | None = None
        self._relaying = False
        self._serving: asyncio.Task[None] | None = None
        self._closed = False
        self._lingering = False
        self._lingered_bytes = 0
        self._peer_done = False

    @property
    def in_request(self) -> bool:
        return self._web is not None and self._web.in_request and self._serving is None

    @property
    def relaying(self) -> bool:
        return self._relaying

    @property
    def serving_task(self) -> asyncio.Task[None] | None:
        """The call that is waiting (for room or for the disk), if any."""
        return self._serving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        front = self.front
        if front.connection_count >= front.max_connections:
            front.refusals.refuse(
                self.peer,
                "connections",
                f"{front.max_connections} connections open on the gRPC port (--max_connections)",
            )
            transport.abort()
            self._closed = True
            return
        front.connections.add(self)
        transport.set_write_buffer_limits(RELAY_HIGH_WATER_BYTES)

    def data_received(self, data: bytes) -> None:
        if self._upstream is not None:
            self._upstream.write(data)
            return
        self.last_data_at = time.monotonic()
        if self._lingering:
            self._lingered_bytes += len(data)
            if self._lingered_bytes > LINGER_MAX_BYTES and self.transport is not None:
                self.transport.close()
            return
        if self._web is not None:
            self._web.receive_data(data)
            self._serve_events()
            return
        self._opening += data
        if self._opening.startswith(PREFACE):
            self._start_relay()
        elif not PREFACE.startswith(self._opening):
            self._web = GrpcWebConnection(self.front.policy)
            self._web.receive_data(self._opening)
            self._opening = b""
            self._serve_events()

    def _start_relay(self) -> None:
        assert self.transport is not None
        self._relaying = True
        native_relay = self.front.native_relay
        if native_relay is not None:
            self._hand_over(native_relay)
            return
        self.transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._connect_upstream())
        self.front.tasks.add(task)
        task.add_done_callback(self.front.tasks.discard)

    def _hand_over(self, native_relay: Callable[[int, str, bytes], None]) -> None:
        """The compiled relay takes a duplicate of the socket; the transport lets go of its
        own descriptor (closing it does not end the connection while the duplicate lives)."""
        assert self.transport is not None
        self.transport.pause_reading()
        sock = self.transport.get_extra_info("socket")
        fd = os.dup(sock.fileno())
        self.transport.abort()
        try:
            native_relay(fd, str(self.front.upstream_path), self._opening)
        except OSError as exc:
            self.front.refusals.refuse(self.peer, "relay", f"cannot relay to gRPC: {exc}")
        self._opening = b""

    async def _connect_upstream(self) -> None:
        assert self.transport is not None
        client = self.transport
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_unix_connection(
                lambda: _Relay(client), str(self.front.upstream_path)
            )
        except OSError as exc:
            self.front.refusals.refuse(self.peer, "relay", f"gRPC is not reachable: {exc}")
            client.abort()
            return
        if self._closed:
            upstream.close()
            return
        upstream.write(self._opening)
        self._opening = b""
        self._upstream = upstream
        client.resume_reading()

    def _serve_events(self) -> None:
        web = self._web
        transport = self.transport
        assert web is not None and transport is not None
        while self._serving is None:
            event = web.next_event()
            if event is None:
                break
            if isinstance(event, Call | OtlpCall):
                if not self._answer_at_once(event):
                    transport.pause_reading()
                    self._serving = asyncio.get_running_loop().create_task(self._serve(event))
                    self.front.tasks.add(self._serving)
                    self._serving.add_done_callback(self.front.tasks.discard)
            elif isinstance(event, Refused):
                self.front.refusals.refuse(self.peer, event.kind, event.reason)
            elif isinstance(event, Closed):
                break
        out = web.data_to_send()
        if out:
            transport.write(out)
        if web.must_close and self._serving is None and not self._lingering:
            self._close_lingering()

    def _close_lingering(self) -> None:
        """Close after a refusal without losing the answer: closing a socket with unread
        input sends a reset, which can destroy the answer before the client reads it. So
        send FIN, read and drop what still comes, and close at the peer's FIN, after
        LINGER_MAX_BYTES, or after LINGER_S (nginx's lingering_close does the same)."""
        assert self.transport is not None
        self._lingering = True
        if self._peer_done or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    def _answer_at_once(self, call: Call | OtlpCall) -> bool:
        """The common case, without a task: room in the queue and no durable ack asked."""
        handler = self.front.handler
        if isinstance(call, OtlpCall):
            if not handler.pipeline.has_room:
                return False
            body = self._otlp_body(call)
            if body is not None:
                self._otlp_take(call, body)
            return True
        if call.ack_durable or not handler.pipeline.has_room:
            return False
        self._accept(call)
        return True

    async def _serve(self, call: Call | OtlpCall) -> None:
        """A call that waits: for room in the queue, or for the disk (`log-ack: durable`).
        Reading stays paused meanwhile, so one connection holds one call at a time."""
        try:
            if isinstance(call, OtlpCall):
                await self._serve_otlp_waiting(call)
            else:
                await self._serve_waiting(call)
        finally:
            self._serving = None
        if self.transport is not None and not self._closed:
            self.transport.resume_reading()
            self._serve_events()

    async def _serve_waiting(self, call: Call) -> None:
        handler = self.front.handler
        pipeline = handler.pipeline
        refusal = await handler.wait_for_room(len(call.message), call.timeout_s)
        if refusal is not None:
            self.front.refusals.refuse(self.peer, "unavailable", refusal)
            self._answer(GrpcStatus.UNAVAILABLE, refusal)
            return
        if not self._accept(call, answer=False) or not call.ack_durable:
            return
        try:
            await asyncio.wait_for(
                pipeline.wait_durable(pipeline.sequencer.last_issued), call.timeout_s
            )
        except TimeoutError:
            self._answer(GrpcStatus.DEADLINE_EXCEEDED, "not durable before the deadline")
        else:
            self._answer(GrpcStatus.OK, payload=_ACCEPTED)

    def _otlp_body(self, call: OtlpCall) -> tuple[bytes, Any] | None:
        """A `/v1/logs` body inflated, and parsed when JSON (protobuf is parsed when taken);
        None once its refusal (400/413/415) is sent."""
        try:
            data = decompressed(
                call.body, call.content_encoding, self.front.policy.max_message_bytes
            )
            return data, request_from_json(data) if is_json(call.content_type) else None
        except OtlpHttpError as exc:
            self._otlp_refuse(call, exc.status, str(exc))
            return None

    def _otlp_take(self, call: OtlpCall, body: tuple[bytes, Any]) -> None:
        """Queue the records and answer (400 for a request refused whole)."""
        try:
            response = self.front.otlp.take(*body)
        except ValueError as exc:
            self._otlp_refuse(call, 400, str(exc))
            return
        assert self._web is not None
        self._web.answer_otlp(export_response(call.content_type, response))

    def _otlp_refuse(self, call: OtlpCall, status: int, reason: str) -> None:
        self.front.refusals.refuse(self.peer, "otlp", f"OTLP/HTTP /v1/logs: {reason}")
        assert self._web is not None
        self._web.answer_otlp(error_response(call.content_type, status, reason))

    async def _serve_otlp_waiting(self, call: OtlpCall) -> None:
        """Inflated and parsed first (a bad body is refused at once), then the queue's waiting
        rule: 429 when many calls wait already, 503 when the wait ran out; both with
        Retry-After."""
        body = self._otlp_body(call)
        if body is None:
            return
        pressure = await self.front.otlp.wait_for_room(len(call.body), None)
        if pressure is not None:
            self.front.refusals.refuse(self.peer, "unavailable", f"OTLP/HTTP: {pressure.reason}")
            status = 429 if pressure.crowded else 503
            assert self._web is not None
            self._web.answer_otlp(
                error_response(call.content_type, status, pressure.reason, pressure.retry_after_s)
            )
            return
        self._otlp_take(call, body)

    def _accept(self, call: Call, answer: bool = True) -> bool:
        """Decode, number and queue; answers at once unless told to wait (durable acks)."""
        handler = self.front.handler
        pipeline = handler.pipeline
        batch = call.message if call.method == "LogBatch" else as_batch(call.message)
        try:
            # The bound of native gRPC (sources/grpc.py): --grpc_max_batch, counted before
            # anything is decoded; then 1,000 messages per decode.
            for piece in batch_pieces(batch, handler.max_batch):
                lines, count = handler.decode_batch(piece, pipeline.next_seq, now_iso())
                pipeline.submit_formatted(lines, count)
                self.front.received += count
        except ValueError as exc:
            reason = str(exc)
            if call.method != "LogBatch":
                reason = reason.replace("LogBatchRequest", "LogRequest")
            self.front.refusals.refuse(self.peer, "message", f"{call.method}: {reason}")
            self._answer(GrpcStatus.INVALID_ARGUMENT, reason)
            return False
        if answer or not call.ack_durable:
            self._answer(GrpcStatus.OK, payload=_ACCEPTED)
        return True

    def _answer(self, status: GrpcStatus, message: str = "", payload: bytes = b"") -> None:
        assert self._web is not None
        self._web.answer(status, message, payload)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        """The client has sent all it will: answer what is complete (a call may be waiting),
        then close; keep the connection open for writing until then."""
        self._peer_done = True
        if self._web is None or self._lingering:
            return None
        self._web.receive_data(b"")
        self._serve_events()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.front.connections.discard(self)
        if self._upstream is not None:
            self._upstream.close()
        if self._serving is not None:
            self._serving.cancel()

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()


class GrpcWebFront:
    """Listens on the gRPC port and serves gRPC-Web; GrpcSource runs grpcio on
    `upstream_address` only, and native gRPC reaches it through here."""

    def __init__(
        self,
        handler: LogServiceHandler,
        policy: Policy,
        max_connections: int,
        read_timeout_s: float,
        otlp: OtlpLogsHandler | None = None,
    ) -> None:
        self.handler = handler
        self.policy = policy
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self.otlp = otlp or OtlpLogsHandler(handler)
        self.refusals = RefusalLog(handler.events)
        self.received = 0  # messages accepted over gRPC-Web
        self.connections: set[FrontConnection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.native_relay, self._relayed_count = _compiled_relay()
        self._private_dir: Path | None = None
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connection_count(self) -> int:
        """Connections open on the gRPC port, the compiled relay's included."""
        return len(self.connections) + self._relayed_count()

    @property
    def upstream_path(self) -> Path:
        assert self._private_dir is not None, "start() first"
        return self._private_dir / "grpc.sock"

    @property
    def upstream_address(self) -> str:
        """Where grpcio is to bind, in gRPC's own address syntax."""
        return f"unix:{self.upstream_path}"

    async def start(self, host: str, port: int) -> int:
        """Bind the gRPC port; the bound port. Raises OSError."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: FrontConnection(self), host, port, reuse_address=True, backlog=1024
        )
        # A directory only this user can enter: nothing reaches grpcio around the front.
        remove_stale_private_dirs(Path(tempfile.gettempdir()))
        self._private_dir = Path(tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX))
        if self.read_timeout_s:
            self._sweeper = loop.create_task(self._close_stalled())
        return int(self._server.sockets[0].getsockname()[1])

    async def _close_stalled(self) -> None:
        """Slowloris guard, as for TCP: a request that stopped coming in the middle is
        closed after --read_timeout (logged); a connection idle that long between requests,
        or that never said which protocol it speaks, is closed quietly."""
        interval = min(1.0, self.read_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.relaying or connection.serving_task is not None:
                    continue
                stalled_s = now - connection.last_data_at
                if stalled_s < self.read_timeout_s:
                    continue
                if connection.in_request:
                    self.refusals.refuse(
                        connection.peer,
                        "stalled",
                        f"closing: stalled for {stalled_s:.0f}s in the middle of a request "
                        "(--read_timeout)",
                    )
                connection.close()

    def stop_accepting(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()

    async def drain(self, max_s: float) -> None:
        """Let gRPC-Web calls in progress finish (up to `max_s`, while grpcio's graceful
        stop sends its GOAWAY through the relays), then close every connection left."""
        waiting = [c.serving_task for c in self.connections if c.serving_task is not None]
        if waiting and max_s > 0:
            await asyncio.wait(waiting, timeout=max_s)
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)


PRIVATE_DIR_PREFIX = "log_server-grpc-"
# A directory without its socket this old is no server's that is still starting.
STALE_UNBOUND_S = 60.0


def remove_stale_private_dirs(temp_dir: Path) -> None:
    """The private directories that servers killed with SIGKILL left behind (a clean stop
    removes its own): this user's, whose socket no longer accepts connections, or that never
    got one. A live server's socket answers, so its directory is kept."""
    uid = os.getuid()
    now = time.time()
    for directory in temp_dir.glob(PRIVATE_DIR_PREFIX + "*"):
        try:
            info = directory.lstat()
            if not directory.is_dir() or directory.is_symlink() or info.st_uid != uid:
                continue
            sock = directory / "grpc.sock"
            if sock.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(1.0)
                    try:
                        probe.connect(str(sock))
                        continue  # a live server's
                    except (ConnectionRefusedError, FileNotFoundError):
                        pass
            elif now - info.st_mtime < STALE_UNBOUND_S:
                continue  # a server still starting
            shutil.rmtree(directory, ignore_errors=True)
        except OSError:
            continue  # not ours to judge: left as it is


def _compiled_relay() -> tuple[Callable[[int, str, bytes], None] | None, Callable[[], int]]:
    """The compiled relay (native/src/relay.rs) and its count of open connections, or the
    asyncio relay above where the compiled part is not installed."""
    try:
        from log_server_native import relay_to_unix, relayed_connections
    except ImportError:
        return None, lambda: 0
    return relay_to_unix, relayed_connections
