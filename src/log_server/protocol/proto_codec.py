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


BatchSplitter = Callable[[bytes, int, int], tuple[int, list[int]]]
"""(LogBatchRequest bytes, max entries, entries per piece) -> (entries, piece boundaries)."""


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    for index in range(pos, min(pos + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    return None


def batch_pieces(data: bytes, max_entries: int, piece_entries: int) -> tuple[int, list[int]]:
    """Count the entries (field 1) of LogBatchRequest bytes without decoding them, stopping
    past `max_entries`, and give the offsets that cut them into LogBatchRequests of at most
    `piece_entries` entries (`[0, ..., len(data)]`). Bytes it cannot walk are one piece,
    which the decoder then refuses with its own reason. The compiled decoder has a twin
    (native/src/proto.rs), fast enough for every call."""
    end = len(data)
    piece_entries = max(1, piece_entries)
    bounds, pos, count = [0], 0, 0
    while pos < end:
        key = _varint(data, pos)
        if key is None:
            return count, [0, end]
        tag, pos = key
        wire = tag & 7
        if wire == 0:
            value = _varint(data, pos)
            if value is None:
                return count, [0, end]
            pos = value[1]
        elif wire == 2:
            length = _varint(data, pos)
            if length is None or length[0] > end - length[1]:
                return count, [0, end]
            pos = length[1] + length[0]
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                return count, [0, end]
        else:
            return count, [0, end]
        if tag == 0x0A:
            count += 1
            if count > max_entries:
                return count, [0, end]
            if count % piece_entries == 0 and pos < end:
                bounds.append(pos)
    bounds.append(end)
    return count, bounds


def batch_splitter(use_native: bool) -> BatchSplitter:
    if use_native:
        from log_server_native import batch_pieces as native_batch_pieces

        return native_batch_pieces  # type: ignore[no-any-return]
    return batch_pieces


def batch_decoder(use_native: bool, line_format: str) -> BatchDecoder:
    if use_native:
        from log_server_native import decode_log_batch

        return functools.partial(decode_log_batch, line_format=line_format)
    return python_batch_decoder(line_format)
