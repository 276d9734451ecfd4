"""gRPC `LogRequest` / `LogBatchRequest` -> LogRecord or formatted lines."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from log_server.core.format import FORMATTERS
from log_server.core.records import LogRecord, checked_attributes
from log_server.generated import log_service_pb2 as pb

BatchDecoder = Callable[[bytes, int, str], tuple[bytes, int]]
"""(LogBatchRequest bytes, first sequence number, receive time) -> (lines, how many).
Raises ValueError for bytes that are not a LogBatchRequest."""


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
        checked_attributes([(a.key, a.value) for a in req.attributes]) if req.attributes else (),
    )


def python_batch_decoder(line_format: str) -> BatchDecoder:
    """The reference path: protobuf (upb) parses, format.py formats."""
    fmt = FORMATTERS[line_format]

    def decode(data: bytes, first_seq: int, received_at: str) -> tuple[bytes, int]:
        try:
            batch = pb.LogBatchRequest.FromString(data)
        except DecodeError as exc:
            raise ValueError(f"not a logservice.LogBatchRequest: {exc}") from None
        text = "".join(
            fmt(seq, record_from_request(request), received_at)
            for seq, request in enumerate(batch.requests, first_seq)
        )
        return text.encode("utf-8", "backslashreplace"), len(batch.requests)

    return decode


def batch_decoder(use_native: bool, line_format: str) -> BatchDecoder:
    if use_native:
        from log_server_native import decode_log_batch

        return functools.partial(decode_log_batch, line_format=line_format)
    return python_batch_decoder(line_format)
