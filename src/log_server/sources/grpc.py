"""gRPC listener (grpc.aio, on the same event loop as everything else).

`logservice.LogService` and `logservice.LogBridge` serve the same methods; the standard
health service reports SERVING while writes succeed; reflection lets `grpcurl` list it all.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

# gRPC's core prints its own errors (e.g. for a port in use) to stderr; the server reports
# those failures itself, in one line. It reads this once, at import. The user's value wins.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection  # noqa: E402

from log_server.core.clock import now_iso
from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.generated import log_service_pb2 as pb
from log_server.health import Health
from log_server.protocol.proto_codec import BatchDecoder, batch_pieces
from log_server.sources.source import ListenError, Tally

if TYPE_CHECKING:
    from log_server.protocol.grpc_web import Policy
    from log_server.protocol.otlp import OtlpDecoder
    from log_server.sources.grpc_web import GrpcWebFront

SERVICE_NAMES = ("logservice.LogService", "logservice.LogBridge")
ACK_METADATA_KEY = "log-ack"

# How long a call waits for the writer to catch up before it is told UNAVAILABLE (or less,
# when the caller's own deadline is sooner).
ADMISSION_WAIT_S = 10.0

# At shutdown, a stream that has been waiting this long for its next message is ended at
# once (as TCP's drain closes a connection quiet this long): 10,000 idle streams otherwise
# held the stop for the whole grace period and then took seconds more to cancel.
IDLE_STREAM_S = 0.2
STREAM_ENDED_AT_SHUTDOWN = (
    "the log server is shutting down; the messages of this stream so far were accepted"
)

# The two reasons wait_for_room gives (OTLP tells them apart: sources/otlp.py).
QUEUE_CROWDED = (
    "the log server's queue is full and enough calls are waiting for room "
    "already (--max_queue_bytes); retry later"
)
NOT_KEEPING_UP = "the log server is not keeping up (writes failing or slow); retry later"

# Every successful call gets the same answer: serialized once (handlers return bytes).
_ACCEPTED: bytes = pb.LogResponse(success=True).SerializeToString()


class LogServiceHandler:
    """Implements both services. `success=true` means accepted: sequenced and queued for
    the writer, which will write it (docs/protocol.md).

    Requests arrive as raw bytes and are decoded here (one LogRequest is decoded as a
    LogBatchRequest of one, by the same compiled decoder as LogBatch), so that bytes which are not a
    LogRequest get INVALID_ARGUMENT and a log line rather than grpc's generic UNKNOWN."""

    def __init__(
        self,
        pipeline: LogPipeline,
        events: ServerEvents,
        decode_batch: BatchDecoder,
        max_batch: int = 10_000,
    ) -> None:
        self.pipeline = pipeline
        self.events = events
        self.decode_batch = decode_batch
        self.max_batch = max_batch
        self._waiting_bytes = 0  # of the requests waiting for room in the queue
        self.received = 0  # messages accepted over native gRPC
        self.refused = 0  # calls refused (INVALID_ARGUMENT, UNAVAILABLE) over native gRPC
        # StreamLogs calls in progress: since when each has been waiting for its next
        # message (None while it handles one), and those ended by end_idle_streams.
        self._streams_waiting: dict[asyncio.Task[Any], float | None] = {}
        self._streams_ended: set[asyncio.Task[Any]] = set()

    async def log_message(self, raw: bytes, context: Any) -> bytes:
        await self._accept(as_batch(raw), context, "LogMessage")
        return await self._answer(context)

    async def stream_logs(self, raw_requests: AsyncIterator[bytes], context: Any) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        waiting = self._streams_waiting
        waiting[task] = time.monotonic()
        try:
            async for raw in raw_requests:
                waiting[task] = None
                await self._accept(as_batch(raw), context, "StreamLogs")
                waiting[task] = time.monotonic()
        except asyncio.CancelledError:
            if task not in self._streams_ended:
                raise
            task.uncancel()
            await context.abort(grpc.StatusCode.UNAVAILABLE, STREAM_ENDED_AT_SHUTDOWN)
        finally:
            waiting.pop(task, None)
            self._streams_ended.discard(task)
        return await self._answer(context)

    def end_idle_streams(self, idle_s: float) -> int:
        """At shutdown: end the streams that have been waiting for their next message for
        `idle_s` or more (those busy with a message go on), with UNAVAILABLE and a reason
        saying that what they sent so far was accepted. How many streams are left."""
        now = time.monotonic()
        for task, since in list(self._streams_waiting.items()):
            if since is not None and now - since >= idle_s and task not in self._streams_ended:
                self._streams_ended.add(task)
                task.cancel()
        return len(self._streams_waiting)

    async def log_batch(self, raw: bytes, context: Any) -> bytes:
        await self._accept(raw, context, "LogBatch")
        return await self._answer(context)

    async def _answer(self, context: Any) -> bytes:
        """`success=true`: accepted; or, when the call carries the metadata
        `log-ack: durable`, on disk as far as --fsync promises (docs/protocol.md)."""
        for key, _ in context.invocation_metadata() or ():
            if key == ACK_METADATA_KEY:
                await self.pipeline.wait_durable(self.pipeline.sequencer.last_issued)
                break
        return _ACCEPTED

    async def _accept(self, batch: bytes, context: Any, method: str) -> None:
        """Decode, number and queue the messages of a LogBatchRequest's bytes, a bounded
        piece at a time: the event loop runs between pieces, and each piece waits for
        room in the queue. A large batch's messages keep their order but may be
        interleaved with other clients' messages between pieces."""
        try:
            pieces = batch_pieces(batch, self.max_batch)
        except ValueError as exc:  # BatchTooLarge too: the request can never succeed
            await self._refuse(context, method, str(exc))
        accepted = 0
        for number, piece in enumerate(pieces):
            if number:
                await asyncio.sleep(0)
            await self._wait_for_room(context, len(batch))
            try:
                lines, count = self.decode_batch(piece, self.pipeline.next_seq, now_iso())
            except ValueError as exc:
                reason = str(exc)
                if accepted:
                    reason += f" (the {accepted} messages before it were accepted)"
                await self._refuse(context, method, reason)
            self.pipeline.submit_formatted(lines, count)
            self.received += count
            accepted += count

    async def _refuse(self, context: Any, method: str, reason: str) -> NoReturn:
        """INVALID_ARGUMENT with the reason, and a log line: the request can never succeed."""
        if method != "LogBatch":
            reason = reason.replace("LogBatchRequest", "LogRequest")
        self.refused += 1
        self.events.grpc_request_failed(method, context.peer(), reason)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
        raise AssertionError("abort returns only by raising")

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "LogMessage": grpc.unary_unary_rpc_method_handler(self.log_message),
            "StreamLogs": grpc.stream_unary_rpc_method_handler(self.stream_logs),
            "LogBatch": grpc.unary_unary_rpc_method_handler(self.log_batch),
        }

    async def _wait_for_room(self, context: Any, size: int) -> None:
        refusal = await self.wait_for_room(size, context.time_remaining())
        if refusal is not None:
            await self._unavailable(context, refusal)

    async def wait_for_room(self, size: int, timeout_s: float | None) -> str | None:
        """Until the queue has room for a request of `size` bytes, for at most
        ADMISSION_WAIT_S (or `timeout_s`, the call's deadline): None, or why the call
        should be told UNAVAILABLE. Room is checked again after every wake-up, since the
        calls woken with this one may have filled the queue already. The requests that
        wait may hold at most --max_queue_bytes between them; past that a call is refused
        at once. Shared by native gRPC and gRPC-Web."""
        pipeline = self.pipeline
        if pipeline.has_room:
            return None
        if self._waiting_bytes + size > pipeline.max_queue_bytes:
            return QUEUE_CROWDED
        loop = asyncio.get_running_loop()
        wait_s = ADMISSION_WAIT_S if timeout_s is None else min(ADMISSION_WAIT_S, timeout_s)
        deadline = loop.time() + wait_s
        self._waiting_bytes += size
        try:
            while not pipeline.has_room:
                try:
                    await asyncio.wait_for(pipeline.wait_for_room(), deadline - loop.time())
                except TimeoutError:
                    return NOT_KEEPING_UP
        finally:
            self._waiting_bytes -= size
        return None

    async def _unavailable(self, context: Any, reason: str) -> NoReturn:
        self.refused += 1
        self.events.grpc_request_failed("LogService", context.peer(), reason)
        await context.abort(grpc.StatusCode.UNAVAILABLE, reason)
        raise AssertionError("abort returns only by raising")


def as_batch(request: bytes) -> bytes:
    """The bytes of a LogBatchRequest holding just this LogRequest: field 1, length-delimited."""
    size = len(request)
    prefix = bytearray(b"\x0a")
    while size >= 0x80:
        prefix.append((size & 0x7F) | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + request


class GrpcSource:
    def __init__(
        self,
        pipeline: LogPipeline,
        events: ServerEvents,
        health_state: Health,
        decode_batch: BatchDecoder,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_s: float = 5.0,
        web: Policy | None = None,
        max_connections: int = 1024,
        read_timeout_s: float = 0.0,
        max_batch: int = 10_000,
        max_request_bytes: int = 4 * 1024 * 1024,
        max_calls: int = 1024,
        decode_otlp: OtlpDecoder | None = None,
    ) -> None:
        """`web`: serve gRPC-Web (and OTLP/HTTP) too, through a front listener with this
        CORS/Host policy. `decode_otlp`: the compiled OTLP decoder, if used."""
        from log_server.sources.otlp import OtlpLogsHandler

        self.host, self.port, self.grace_s = host, port, grace_s
        self.max_request_bytes = max_request_bytes
        self.max_calls, self.max_connections = max_calls, max_connections
        self.handler = LogServiceHandler(pipeline, events, decode_batch, max_batch)
        self.otlp = OtlpLogsHandler(self.handler, decode_otlp)
        self.front: GrpcWebFront | None = None
        if web is not None:
            from log_server.sources.grpc_web import GrpcWebFront

            self.front = GrpcWebFront(self.handler, web, max_connections, read_timeout_s, self.otlp)
        self.health_state = health_state
        self.health_servicer = health.aio.HealthServicer()
        self._server: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connection_count(self) -> int:
        """Connections through the gRPC-Web front (grpcio does not count its own)."""
        return self.front.connection_count if self.front is not None else 0

    def tallies(self) -> list[Tally]:
        """grpc, grpc-web and otlp share one port: its connections are the `grpc` tally's,
        counted by the gRPC-Web front (grpcio counts none of its own)."""
        otlp = Tally("otlp", self.otlp.received, self.otlp.refused)
        front = self.front
        if front is None:
            return [Tally("grpc", self.handler.received, self.handler.refused), otlp]
        return [
            Tally(
                "grpc",
                self.handler.received,
                self.handler.refused,
                front.connection_count,
                front.refusals.connections_refused,
            ),
            Tally("grpc-web", front.received, front.refusals.calls_refused),
            otlp,
        ]

    async def start(self) -> str:
        """Bind and serve (port 0 picks a free one); the bound address. With the gRPC-Web
        front, the front takes the port and grpcio a private Unix socket behind it."""
        host = self.host
        if self.front is None:
            port = await self._serve(
                f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
            )
        else:
            try:
                port = await self.front.start(host, self.port)  # a busy port fails first
            except OSError as exc:
                raise ListenError(f"gRPC {host}:{self.port}", exc) from None
            try:
                await self._serve(self.front.upstream_address)
            except ListenError:
                self.front.stop_accepting()
                await self.front.drain(0)
                raise
        return f"grpc=[{host}]:{port}" if ":" in host else f"grpc={host}:{port}"

    async def _serve(self, address: str) -> int:
        """grpcio on a gRPC address (`host:port`, `unix:/path`); the bound port."""
        options = [
            ("grpc.so_reuseport", 0),
            # grpcio refuses a larger request itself, with RESOURCE_EXHAUSTED, before
            # reading it whole.
            ("grpc.max_receive_message_length", self.max_request_bytes),
            # HTTP/2 streams one connection may have open: no more than calls in all, so a
            # client past it queues its calls itself. Not lower: grpc-core counts a stream
            # a little longer than its client does, and a client at a lower per-connection
            # limit gets some calls refused (REFUSED_STREAM: 20% of a 1,000-call burst on
            # one channel at a limit of 100).
            ("grpc.max_concurrent_streams", self.max_calls),
            # --max_connections bounds the gRPC listener's connections as it does TCP's:
            # past it grpcio closes a new connection at once.
            ("grpc.max_allowed_incoming_connections", self.max_connections),
        ]
        # Past max_calls grpcio answers RESOURCE_EXHAUSTED before reading the request.
        server = grpc.aio.server(options=options, maximum_concurrent_rpcs=self.max_calls)
        handlers = self.handler.method_handlers()
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(name, handlers) for name in SERVICE_NAMES]
        )
        for name in SERVICE_NAMES:  # looked up by gRPC's core, not a Python loop per call
            server.add_registered_method_handlers(name, handlers)
        from log_server.sources.otlp import SERVICE_NAME as OTLP_SERVICE

        otlp_handlers = self.otlp.method_handlers()
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(OTLP_SERVICE, otlp_handlers)]
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, OTLP_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise ListenError(f"gRPC {address}", OSError("address in use or not available"))
        await server.start()
        self._server = server
        await self._publish_health(self.health_state.ok)
        self.health_state.on_change(self._health_changed)
        return int(bound)

    def _health_changed(self, ok: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._publish_health(ok))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_health(self, ok: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *SERVICE_NAMES):
            await self.health_servicer.set(service, status)

    def stop_accepting(self) -> None:
        """The front stops accepting; grpcio refuses new calls as part of its graceful stop
        (drain)."""
        if self.front is not None:
            self.front.stop_accepting()

    async def drain(self) -> None:
        """Refuse new calls, end idle streams, let calls in progress finish for up to
        `grace_s`. grpcio stops before the front closes the connections it relays, so a
        relayed call gets its status rather than a closed socket."""
        deadline = time.monotonic() + self.grace_s
        if self._server is not None:
            await self.health_servicer.enter_graceful_shutdown()
            stopping = asyncio.ensure_future(self._server.stop(self.grace_s))
            while not stopping.done():
                if not self.handler.end_idle_streams(IDLE_STREAM_S):
                    break
                await asyncio.wait([stopping], timeout=IDLE_STREAM_S / 4)
            await stopping
        if self.front is not None:
            await self.front.drain(max(0.0, deadline - time.monotonic()))
