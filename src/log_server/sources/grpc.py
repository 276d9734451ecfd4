"""gRPC listener (grpc.aio, on the same event loop as everything else).

`logservice.LogService` and `logservice.LogBridge` serve the same methods; the standard
health service reports SERVING while writes succeed; reflection lets `grpcurl` list it all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

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
from log_server.protocol.proto_codec import BatchDecoder
from log_server.sources.source import ListenError

if TYPE_CHECKING:
    from log_server.protocol.grpc_web import Policy
    from log_server.sources.grpc_web import GrpcWebFront

SERVICE_NAMES = ("logservice.LogService", "logservice.LogBridge")
ACK_METADATA_KEY = "log-ack"

# How long a call waits for the writer to catch up before it is told UNAVAILABLE (or less,
# when the caller's own deadline is sooner).
ADMISSION_WAIT_S = 10.0

# Every successful call gets the same answer: serialized once (handlers return bytes).
_ACCEPTED: bytes = pb.LogResponse(success=True).SerializeToString()


class LogServiceHandler:
    """Implements both services. `success=true` means accepted: sequenced and queued for
    the writer, which will write it (docs/protocol.md).

    Requests arrive as raw bytes and are decoded here (one LogRequest is decoded as a
    LogBatchRequest of one, by the same compiled decoder as LogBatch), so that bytes which are not a
    LogRequest get INVALID_ARGUMENT and a log line rather than grpc's generic UNKNOWN."""

    def __init__(
        self, pipeline: LogPipeline, events: ServerEvents, decode_batch: BatchDecoder
    ) -> None:
        self.pipeline = pipeline
        self.events = events
        self.decode_batch = decode_batch

    async def log_message(self, raw: bytes, context: Any) -> bytes:
        if not self.pipeline.has_room:
            await self._wait_for_room(context)
        await self._accept(as_batch(raw), context, "LogMessage")
        return await self._answer(context)

    async def stream_logs(self, raw_requests: AsyncIterator[bytes], context: Any) -> bytes:
        async for raw in raw_requests:
            if not self.pipeline.has_room:
                await self._wait_for_room(context)
            await self._accept(as_batch(raw), context, "StreamLogs")
        return await self._answer(context)

    async def log_batch(self, raw: bytes, context: Any) -> bytes:
        if not self.pipeline.has_room:
            await self._wait_for_room(context)
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
        """Decode, number and queue the messages of a LogBatchRequest's bytes."""
        try:
            lines, count = self.decode_batch(batch, self.pipeline.next_seq, now_iso())
        except ValueError as exc:
            reason = str(exc)
            if method != "LogBatch":
                reason = reason.replace("LogBatchRequest", "LogRequest")
            self.events.grpc_request_failed(method, context.peer(), reason)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
        self.pipeline.submit_formatted(lines, count)

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "LogMessage": grpc.unary_unary_rpc_method_handler(self.log_message),
            "StreamLogs": grpc.stream_unary_rpc_method_handler(self.stream_logs),
            "LogBatch": grpc.unary_unary_rpc_method_handler(self.log_batch),
        }

    async def _wait_for_room(self, context: Any) -> None:
        if self.pipeline.has_room:
            return
        remaining = context.time_remaining()
        timeout = ADMISSION_WAIT_S if remaining is None else min(ADMISSION_WAIT_S, remaining)
        try:
            await asyncio.wait_for(self.pipeline.wait_for_room(), timeout)
        except TimeoutError:
            reason = "the log server is not keeping up (writes failing or slow); retry later"
            self.events.grpc_request_failed("LogService", context.peer(), reason)
            await context.abort(grpc.StatusCode.UNAVAILABLE, reason)


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
    ) -> None:
        """`web`: serve gRPC-Web too, through a front listener with this CORS/Host policy."""
        self.host, self.port, self.grace_s = host, port, grace_s
        self.handler = LogServiceHandler(pipeline, events, decode_batch)
        self.front: GrpcWebFront | None = None
        if web is not None:
            from log_server.sources.grpc_web import GrpcWebFront

            self.front = GrpcWebFront(self.handler, web, max_connections, read_timeout_s)
        self.health_state = health_state
        self.health_servicer = health.aio.HealthServicer()
        self._server: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connection_count(self) -> int:
        """Connections through the gRPC-Web front (grpcio does not count its own)."""
        return self.front.connection_count if self.front is not None else 0

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
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        handlers = self.handler.method_handlers()
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(name, handlers) for name in SERVICE_NAMES]
        )
        for name in SERVICE_NAMES:  # looked up by gRPC's core, not a Python loop per call
            server.add_registered_method_handlers(name, handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
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
        """Refuse new calls, let calls in progress finish for up to `grace_s`."""
        draining = []
        if self.front is not None:
            draining.append(self.front.drain(self.grace_s))
        if self._server is not None:
            await self.health_servicer.enter_graceful_shutdown()
            draining.append(self._server.stop(self.grace_s))
        await asyncio.gather(*draining)
