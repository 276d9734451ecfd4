"""OTLP logs (ExportLogsServiceRequest) -> LogRecord, sans-IO: a parsed message in, records out.

The mapping is documented in docs/protocol.md ("OpenTelemetry logs"). Attributes that have no
field of their own keep their OTLP key under a prefix saying where they came from
(`resource.`, `scope.`; a record's own attributes keep their key as is), so nothing is lost.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb

from log_server.core.records import (
    ATTRIBUTES_REFUSED_KEY,
    Level,
    LogRecord,
    attributes_refusal,
)

# OTLP SeverityNumber ranges (1-4 TRACE ... 21-24 FATAL) -> our levels.
_SEVERITY_LEVELS = (
    (1, Level.DEBUG),  # TRACE
    (5, Level.DEBUG),
    (9, Level.INFO),
    (13, Level.WARNING),
    (17, Level.ERROR),
    (21, Level.CRITICAL),  # FATAL
)
_SEVERITY_TEXT = {
    "trace": Level.DEBUG,
    "debug": Level.DEBUG,
    "info": Level.INFO,
    "warn": Level.WARNING,
    "warning": Level.WARNING,
    "error": Level.ERROR,
    "fatal": Level.CRITICAL,
    "critical": Level.CRITICAL,
}
# Record attributes with a field of their own (old and new semantic-convention names).
_FIELD_KEYS = {
    "code.filepath": "filename",
    "code.file.path": "filename",
    "code.function": "function_name",
    "code.function.name": "function_name",
    "code.lineno": "line_number",
    "code.line.number": "line_number",
    "thread.id": "thread_id",
    "thread.name": "thread_name",
}
_EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")


OtlpDecoder = Callable[[bytes, int, str], tuple[bytes, int, list[str]] | None]
"""(request bytes, first seq, receive time) -> (lines, count, attribute refusals), or None
when the request is the Python path's to map (the compiled decoder maps the common case)."""


def native_decoder(use_native: bool, line_format: str) -> OtlpDecoder | None:
    """The compiled decoder (native/src/otlp.rs) when the server uses native decoders."""
    if not use_native:
        return None
    from log_server_native import decode_otlp_logs

    return functools.partial(decode_otlp_logs, line_format=line_format)


def parse_request(raw: bytes) -> Any:
    """An ExportLogsServiceRequest's bytes parsed; ValueError when they are not one."""
    try:
        return otlp_pb.ExportLogsServiceRequest.FromString(raw)
    except DecodeError as exc:
        raise ValueError(f"not an OTLP ExportLogsServiceRequest: {exc}") from None


def level_for(severity_number: int, severity_text: str) -> int:
    """The number wins when set (it is the standard one); else the text; else NOTSET."""
    if severity_number > 0:
        level: int = Level.NOTSET
        for start, mapped in _SEVERITY_LEVELS:
            if severity_number >= start:
                level = mapped
        return level
    return int(_SEVERITY_TEXT.get(severity_text.strip().lower(), Level.NOTSET))


def any_value(value: Any) -> object:
    """An AnyValue as a plain Python value (for JSON)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def as_text(value: Any) -> str:
    """Strings as they are; every other AnyValue as compact JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    return json.dumps(any_value(value), ensure_ascii=False, separators=(",", ":"))


def timestamp(nanos: int) -> str:
    """Unix nanoseconds as ISO-8601 UTC with microseconds, as the receive time is written."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    when = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{when}.{rest // 1000:06d}+00:00"


def records_from_request(request: Any, refusals: list[str] | None = None) -> list[LogRecord]:
    """Every log record of the request, in request order. `refusals` gets the reason of each
    record whose attributes broke a bound (it is still written, with `attributes_refused`)."""
    out: list[LogRecord] = []
    for resource_logs in request.resource_logs:
        service = host = ""
        resource_pairs: list[tuple[str, str]] = []
        for kv in resource_logs.resource.attributes:
            if kv.key == "service.name":
                service = as_text(kv.value)
            elif kv.key == "host.name":
                host = as_text(kv.value)
            else:
                resource_pairs.append(("resource." + kv.key, as_text(kv.value)))
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_pairs = [("scope." + kv.key, as_text(kv.value)) for kv in scope.attributes]
            if scope.version:
                scope_pairs.insert(0, ("scope.version", scope.version))
            for log in scope_logs.log_records:
                out.append(
                    _record(log, scope.name, service, host, resource_pairs, scope_pairs, refusals)
                )
    return out


def _record(
    log: Any,
    logger: str,
    service: str,
    host: str,
    resource_pairs: list[tuple[str, str]],
    scope_pairs: list[tuple[str, str]],
    refusals: list[str] | None,
) -> LogRecord:
    record = LogRecord(
        hostname=host,
        logger_name=logger,
        service_name=service,
        level=level_for(log.severity_number, log.severity_text),
        message=as_text(log.body),
    )
    nanos = log.time_unix_nano or log.observed_time_unix_nano
    if nanos:
        record.timestamp = timestamp(nanos)
    pairs: list[tuple[str, str]] = []
    exception: dict[str, str] = {}
    for kv in log.attributes:
        key = kv.key
        field = _FIELD_KEYS.get(key)
        if field is not None:
            setattr(record, field, as_text(kv.value))
        elif key in _EXCEPTION_KEYS:
            exception[key] = as_text(kv.value)
        else:
            pairs.append((key, as_text(kv.value)))
    if exception:
        record.stack_trace = _stack_trace(exception)
    trace: list[tuple[str, str]] = []
    if log.trace_id:
        trace.append(("trace_id", log.trace_id.hex()))
    if log.span_id:
        trace.append(("span_id", log.span_id.hex()))
    all_pairs = trace + pairs + resource_pairs + scope_pairs
    if all_pairs:
        reason = attributes_refusal(all_pairs)
        if reason is None:
            record.attributes = tuple(all_pairs)
        else:
            record.attributes = ((ATTRIBUTES_REFUSED_KEY, reason),)
            if refusals is not None:
                refusals.append(reason)
    return record


def _stack_trace(exception: dict[str, str]) -> str:
    """The stack trace when given (it names type and message already), else `type: message`."""
    stack = exception.get("exception.stacktrace", "")
    if stack:
        return stack
    kind = exception.get("exception.type", "")
    message = exception.get("exception.message", "")
    return f"{kind}: {message}" if kind and message else kind or message
