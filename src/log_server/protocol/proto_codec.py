"""gRPC `LogRequest` -> LogRecord. Protobuf has already checked the bytes and the UTF-8."""

from __future__ import annotations

from typing import Any

from log_server.core.records import LogRecord


def record_from_request(req: Any) -> LogRecord:
    return LogRecord(
        req.timestamp,
        req.hostname,
        req.logger_name,
        req.module,
        req.level,
        req.filename,
        req.function_name,
        req.line_number,
        req.message,
        req.path_name,
        req.process_id,
        req.process_name,
        req.thread_id,
        req.thread_name,
        req.service_name,
        req.stack_trace,
    )
