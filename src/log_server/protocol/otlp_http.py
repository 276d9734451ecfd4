"""OTLP/HTTP for logs (`POST /v1/logs`), sans-IO: a body and its headers in, an
ExportLogsServiceRequest out; responses and error bodies shaped as the OTLP/HTTP
specification says. No sockets: protocol/grpc_web.py routes the request here.

Binary bodies are protobuf; JSON bodies are the OTLP JSON encoding, which is protobuf's JSON
mapping (json_format does it) with the specification's one difference on the way in: trace
and span ids are hex strings, not base64. Field names in lowerCamelCase, enums as integers
and 64-bit integers as strings or numbers are all what json_format reads already; unknown
fields are ignored, as the specification requires of receivers.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb

LOGS_PATH = "/v1/logs"
OTHER_SIGNAL_PATHS = ("/v1/traces", "/v1/metrics", "/v1development/profiles")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
ENCODINGS = ("identity", "gzip")

# json_format's own default nesting limit; AnyValue nests (arrays, kvlists).
_MAX_JSON_DEPTH = 100
# Concatenated gzip members (RFC 1952 allows them): at most this many in one body.
_MAX_GZIP_MEMBERS = 64


class OtlpHttpError(ValueError):
    """A request that can never succeed as sent: its HTTP status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def is_json(content_type: str) -> bool:
    return content_type == JSON


def decompressed(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The body as sent, or gunzipped, never more than `max_bytes` of it (a small gzip body
    can stand for gigabytes: it is inflated at most one byte past the limit)."""
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise OtlpHttpError(
            415, f"Content-Encoding {encoding!r} is not supported ({', '.join(ENCODINGS)})"
        )
    out = bytearray()
    rest = body
    for _ in range(_MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise OtlpHttpError(400, f"body is not valid gzip: {exc}") from None
        if len(out) > max_bytes:
            raise OtlpHttpError(
                413, f"body inflates to more than the limit of {max_bytes} bytes (gzip)"
            )
        if not inflater.eof:
            raise OtlpHttpError(400, "gzip body ends before its end")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)
    raise OtlpHttpError(400, f"more than {_MAX_GZIP_MEMBERS} gzip members in one body")


def request_from_json(data: bytes) -> otlp_pb.ExportLogsServiceRequest:
    """An OTLP JSON body: hex ids turned into what json_format expects, then parsed."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise OtlpHttpError(400, f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpHttpError(400, "body is not a JSON object (an ExportLogsServiceRequest)")
    _ids_as_base64(document)
    request = otlp_pb.ExportLogsServiceRequest()
    try:
        json_format.ParseDict(
            document, request, ignore_unknown_fields=True, max_recursion_depth=_MAX_JSON_DEPTH
        )
    except (json_format.ParseError, RecursionError) as exc:
        raise OtlpHttpError(
            400, f"body is not an OTLP JSON ExportLogsServiceRequest: {exc}"
        ) from None
    return request


_ID_KEYS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8}


def _ids_as_base64(document: dict[str, Any]) -> None:
    """Every log record's hex `traceId`/`spanId`, in place, as base64 for json_format."""
    for resource_logs in _objects(document, "resourceLogs", "resource_logs"):
        for scope_logs in _objects(resource_logs, "scopeLogs", "scope_logs"):
            for record in _objects(scope_logs, "logRecords", "log_records"):
                for key, size in _ID_KEYS.items():
                    value = record.get(key)
                    if isinstance(value, str):
                        record[key] = _hex_id_as_base64(key, value, size)


def _objects(parent: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """The objects of a repeated field (either name); json_format reports anything else."""
    for key in keys:
        values = parent.get(key)
        if isinstance(values, list):
            return [value for value in values if isinstance(value, dict)]
    return []


def _hex_id_as_base64(key: str, value: str, size: int) -> str:
    if not value:
        return ""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise OtlpHttpError(400, f"{key} {value[:40]!r} is not {size} bytes of hex")
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Response:
    """An HTTP response to send: status, content type, body, and Retry-After (seconds)."""

    status: int
    content_type: str
    body: bytes
    retry_after_s: int | None = None


def export_response(content_type: str, response: otlp_pb.ExportLogsServiceResponse) -> Response:
    """200 with the ExportLogsServiceResponse (partial_success included), in the request's
    encoding."""
    return Response(200, content_type, _encode(content_type, response))


_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def error_response(
    content_type: str, status: int, reason: str, retry_after_s: int | None = None
) -> Response:
    """A 4xx/5xx answer: a google.rpc.Status in the request's encoding (protobuf unless the
    request was JSON), with RetryInfo and Retry-After when the client should retry."""
    error = status_pb2.Status(code=_CODES.get(status, code_pb2.UNKNOWN), message=reason)
    if retry_after_s is not None:
        error.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after_s))
        )
    content_type = content_type if content_type in CONTENT_TYPES else PROTOBUF
    return Response(status, content_type, _encode(content_type, error), retry_after_s)


def _encode(content_type: str, message: Message) -> bytes:
    if is_json(content_type):
        document = json_format.MessageToDict(message)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return bytes(message.SerializeToString())
