"""OTLP logs: `opentelemetry.proto.collector.logs.v1.LogsService/Export` over native gRPC,
and the rules its OTLP/HTTP twin (`POST /v1/logs`, sources/grpc_web.py) shares with it.

Both go through LogBatch's queue bound and waiting rule (LogServiceHandler.wait_for_room) and
its --grpc_max_batch count limit. Under backpressure a client is told when to retry: a
google.rpc.RetryInfo in the gRPC status details (OTLP exporters read it), Retry-After in HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb

from log_server.core.clock import now_iso
from log_server.core.records import ATTRIBUTES_REFUSED_KEY, LogRecord
from log_server.protocol.otlp import OtlpDecoder, parse_request, records_from_request
from log_server.sources.grpc import QUEUE_CROWDED, LogServiceHandler

SERVICE_NAME = "opentelemetry.proto.collector.logs.v1.LogsService"
# When to retry: the queue is full and many calls wait already (the writer is behind, but
# moving), or a call waited ADMISSION_WAIT_S in vain (writes failing or very slow).
RETRY_CROWDED_S = 1
RETRY_UNAVAILABLE_S = 5


@dataclass(frozen=True)
class Mapped:
    """A request's records, and why some of them lost their attributes."""

    records: list[LogRecord]
    attribute_refusals: list[str]


@dataclass(frozen=True)
class Backpressure:
    """Why a request was not taken now, and when to send it again."""

    reason: str
    crowded: bool

    @property
    def retry_after_s(self) -> int:
        return RETRY_CROWDED_S if self.crowded else RETRY_UNAVAILABLE_S


class OtlpLogsHandler:
    """Export: wait for room, then decode, map and queue in request order, at once (the lines
    of the compiled decoder are numbered as they are made). The compiled decoder maps the
    common request; the rest, and every error, goes the Python way (protocol/otlp.py)."""

    def __init__(self, logs: LogServiceHandler, decode_native: OtlpDecoder | None = None) -> None:
        self.logs = logs
        self.decode_native = decode_native
        self.received = 0  # log records queued (gRPC and HTTP)
        self.refused = 0  # Export calls refused over gRPC

    def take(self, raw: bytes, parsed: Any = None) -> otlp_pb.ExportLogsServiceResponse:
        """Queue the records of `raw` (or of `parsed`, a request already parsed from JSON);
        ValueError when the request is refused whole (nothing of it is queued)."""
        pipeline = self.logs.pipeline
        if parsed is None and self.decode_native is not None:
            decoded = self.decode_native(raw, pipeline.next_seq, now_iso())
            if decoded is not None:
                lines, count, refusals = decoded
                self._check_count(count)
                pipeline.submit_formatted(lines, count)
                self.received += count
                return export_response(refusals)
        mapped = self.records(parse_request(raw) if parsed is None else parsed)
        return self.submit(mapped)

    def _check_count(self, count: int) -> None:
        if count > self.logs.max_batch:
            raise ValueError(f"{count} log records (limit {self.logs.max_batch}, --grpc_max_batch)")

    def records(self, request: Any) -> Mapped:
        """The request's records; ValueError past --grpc_max_batch (it can never succeed)."""
        refusals: list[str] = []
        records = records_from_request(request, refusals)
        self._check_count(len(records))
        return Mapped(records, refusals)

    async def wait_for_room(self, size: int, timeout_s: float | None) -> Backpressure | None:
        reason = await self.logs.wait_for_room(size, timeout_s)
        if reason is None:
            return None
        return Backpressure(reason, crowded=reason == QUEUE_CROWDED)

    def submit(self, mapped: Mapped) -> otlp_pb.ExportLogsServiceResponse:
        """Queue the records; the response, with a partial_success warning when some records'
        attributes were replaced by `attributes_refused` (every record is still written)."""
        self.logs.pipeline.submit(mapped.records)
        self.received += len(mapped.records)
        return export_response(mapped.attribute_refusals)

    async def export(self, raw: bytes, context: Any) -> bytes:
        pressure = await self.wait_for_room(len(raw), context.time_remaining())
        if pressure is not None:
            code = (
                grpc.StatusCode.RESOURCE_EXHAUSTED
                if pressure.crowded
                else grpc.StatusCode.UNAVAILABLE
            )
            await self._abort(context, code, pressure.reason, pressure.retry_after_s)
        try:
            response = self.take(raw)
        except ValueError as exc:
            await self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return bytes(response.SerializeToString())

    async def _abort(
        self, context: Any, code: Any, reason: str, retry_after_s: int | None = None
    ) -> NoReturn:
        self.refused += 1
        self.logs.events.grpc_request_failed("LogsService/Export", context.peer(), reason)
        metadata: tuple[tuple[str, bytes], ...] = ()
        if retry_after_s is not None:
            metadata = (("grpc-status-details-bin", status_details(code, reason, retry_after_s)),)
        await context.abort(code, reason, trailing_metadata=metadata)
        raise AssertionError("abort returns only by raising")

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {"Export": grpc.unary_unary_rpc_method_handler(self.export)}


def export_response(replaced: list[str]) -> otlp_pb.ExportLogsServiceResponse:
    response = otlp_pb.ExportLogsServiceResponse()
    if replaced:
        partial = response.partial_success
        partial.rejected_log_records = 0
        partial.error_message = (
            f"all records written, but {len(replaced)} with their attributes replaced by "
            f"{ATTRIBUTES_REFUSED_KEY} (first: {replaced[0]})"
        )
    return response


def status_details(code: Any, reason: str, retry_after_s: int) -> bytes:
    """`grpc-status-details-bin`: a google.rpc.Status carrying a RetryInfo."""
    status = status_pb2.Status(code=code.value[0], message=reason)
    status.details.add().Pack(
        error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after_s))
    )
    return bytes(status.SerializeToString())
