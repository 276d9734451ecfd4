"""OTLP logs over native gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export`.

Served by grpcio beside LogService, through the same queue bound and waiting rule
(LogServiceHandler.wait_for_room) and the same --grpc_max_batch count limit.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb

from log_server.protocol.otlp import records_from_request
from log_server.sources.grpc import LogServiceHandler

SERVICE_NAME = "opentelemetry.proto.collector.logs.v1.LogsService"
_ACCEPTED: bytes = otlp_pb.ExportLogsServiceResponse().SerializeToString()


class OtlpLogsHandler:
    """Export: decode, map (protocol/otlp.py), wait for room, submit in request order."""

    def __init__(self, logs: LogServiceHandler) -> None:
        self.logs = logs
        self.received = 0  # log records accepted
        self.refused = 0  # Export calls refused

    async def export(self, raw: bytes, context: Any) -> bytes:
        try:
            request = otlp_pb.ExportLogsServiceRequest.FromString(raw)
        except DecodeError as exc:
            await self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"not OTLP logs: {exc}")
        records = records_from_request(request)
        if len(records) > self.logs.max_batch:
            await self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(records)} log records (limit {self.logs.max_batch}, --grpc_max_batch)",
            )
        refusal = await self.logs.wait_for_room(len(raw), context.time_remaining())
        if refusal is not None:
            await self._abort(context, grpc.StatusCode.UNAVAILABLE, refusal)
        self.logs.pipeline.submit(records)
        self.received += len(records)
        return _ACCEPTED

    async def _abort(self, context: Any, code: Any, reason: str) -> NoReturn:
        self.refused += 1
        self.logs.events.grpc_request_failed("LogsService/Export", context.peer(), reason)
        await context.abort(code, reason)
        raise AssertionError("abort returns only by raising")

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {"Export": grpc.unary_unary_rpc_method_handler(self.export)}
