"""OTLP/HTTP bodies (protocol/otlp_http.py): the OTLP JSON encoding, gzip, error bodies."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb

from log_server.protocol.otlp import parse_request
from log_server.protocol.otlp_http import (
    JSON,
    PROTOBUF,
    OtlpHttpError,
    decompressed,
    error_response,
    export_response,
    request_from_json,
)

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"

# The shape of opentelemetry-proto's examples/logs.json: lowerCamelCase keys, hex ids,
# 64-bit integers as strings, the severity as an integer.
SPEC_EXAMPLE: dict[str, Any] = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]
            },
            "scopeLogs": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1544712660300000000",
                            "observedTimeUnixNano": "1544712660300000000",
                            "severityNumber": 10,
                            "severityText": "Information",
                            "traceId": TRACE_ID,
                            "spanId": SPAN_ID,
                            "body": {"stringValue": "Example log record"},
                            "attributes": [
                                {"key": "int.attribute", "value": {"intValue": "10"}},
                                {"key": "bytes.attribute", "value": {"bytesValue": "AAE="}},
                            ],
                            "aFieldFromANewerVersion": {"ignored": True},
                        }
                    ],
                }
            ],
        }
    ]
}


def as_json(document: object) -> bytes:
    return json.dumps(document).encode()


def nested_value(depth: int) -> dict[str, Any]:
    """An AnyValue of kvlists `depth` deep."""
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def test_the_specification_example_parses_with_hex_ids() -> None:
    request = request_from_json(as_json(SPEC_EXAMPLE))
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    assert record.trace_id == bytes.fromhex(TRACE_ID)
    assert record.span_id == bytes.fromhex(SPAN_ID)
    assert record.time_unix_nano == 1544712660300000000
    assert record.severity_number == 10
    assert record.body.string_value == "Example log record"
    assert record.attributes[0].value.int_value == 10
    assert record.attributes[1].value.bytes_value == b"\x00\x01", "bytesValue stays base64"
    assert request.resource_logs[0].scope_logs[0].scope.version == "1.0.0"


def test_empty_ids_are_absent() -> None:
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "", "spanId": ""}]}]}]}
    (record,) = request_from_json(as_json(document)).resource_logs[0].scope_logs[0].log_records
    assert record.trace_id == b"" and record.span_id == b""


@pytest.mark.parametrize(
    "trace_id",
    [
        "zz",
        TRACE_ID[:-2],
        TRACE_ID + "00",
        base64.b64encode(bytes.fromhex(TRACE_ID)).decode(),  # base64 is not OTLP JSON
    ],
)
def test_an_id_that_is_not_hex_of_the_right_size_is_400(trace_id: str) -> None:
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": trace_id}]}]}]}
    with pytest.raises(OtlpHttpError, match="traceId") as caught:
        request_from_json(as_json(document))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"\xff\xfe{}",
        b'{"resourceLogs": 5}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
        b"[" * 100_000 + b"]" * 100_000,
        as_json({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": nested_value(200)}]}]}]}),
    ],
    ids=["text", "array", "string", "utf16", "wrong-type", "bad-int", "deep-json", "deep-any"],
)
def test_a_body_that_is_not_otlp_json_is_400(body: bytes) -> None:
    with pytest.raises(OtlpHttpError) as caught:
        request_from_json(body)
    assert caught.value.status == 400


def test_protobuf_bodies_inflate_to_the_request() -> None:
    request = request_from_json(as_json(SPEC_EXAMPLE))
    raw = request.SerializeToString()
    assert parse_request(decompressed(gzip.compress(raw), "gzip", 1 << 20)) == request
    with pytest.raises(ValueError, match="not an OTLP ExportLogsServiceRequest"):
        parse_request(b"\x0a\xff\xff\xff")


def test_gzip_members_inflate_in_turn() -> None:
    assert decompressed(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 10) == b"abcd"
    assert decompressed(b"as is", "identity", 10) == b"as is"
    assert decompressed(gzip.compress(b"ab"), " GZIP ", 10) == b"ab"
    assert decompressed(b"as is", "", 10) == b"as is"


def test_a_gzip_bomb_is_413_without_inflating_it_all() -> None:
    bomb = gzip.compress(bytes(16 << 20))
    assert len(bomb) < 100_000
    with pytest.raises(OtlpHttpError, match="inflates") as caught:
        decompressed(bomb, "gzip", 1 << 20)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(b"x" * 1000)[:-12], "gzip", 400),
        (b"whatever", "br", 415),
        (b"whatever", "deflate", 415),
    ],
    ids=["not-gzip", "truncated", "brotli", "deflate"],
)
def test_bad_encodings(body: bytes, encoding: str, status: int) -> None:
    with pytest.raises(OtlpHttpError) as caught:
        decompressed(body, encoding, 1 << 20)
    assert caught.value.status == status


def test_error_bodies_are_google_rpc_status_with_retry_info() -> None:
    answer = error_response(PROTOBUF, 503, "busy", retry_after_s=5)
    assert (answer.status, answer.content_type, answer.retry_after_s) == (503, PROTOBUF, 5)
    status = status_pb2.Status.FromString(answer.body)
    assert status.code == 14 and status.message == "busy"
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.retry_delay.seconds == 5

    answer = error_response(JSON, 400, "bad")
    assert answer.content_type == JSON and answer.retry_after_s is None
    assert json.loads(answer.body) == {"code": 3, "message": "bad"}
    document = json.loads(error_response(JSON, 429, "later", retry_after_s=1).body)
    assert document["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
    ]


def test_export_responses_in_the_request_encoding() -> None:
    response = otlp_pb.ExportLogsServiceResponse()
    response.partial_success.error_message = "warning"
    answer = export_response(JSON, response)
    assert answer.status == 200
    assert json.loads(answer.body) == {"partialSuccess": {"errorMessage": "warning"}}
    answer = export_response(PROTOBUF, response)
    assert otlp_pb.ExportLogsServiceResponse.FromString(answer.body) == response
    assert export_response(JSON, otlp_pb.ExportLogsServiceResponse()).body == b"{}"


_ids = st.one_of(st.just(b""), st.binary(min_size=16, max_size=16))
_records = st.builds(
    lambda trace, span, body, number, nanos: {
        "trace_id": trace,
        "span_id": span[:8],
        "body": body,
        "severity_number": number,
        "time_unix_nano": nanos,
    },
    _ids,
    _ids,
    st.text(),
    st.integers(0, 24),
    st.integers(0, 2**64 - 1),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(_records, max_size=5))
def test_otlp_json_of_any_request_reads_back(records: list[dict[str, Any]]) -> None:
    """What an SDK's JSON encoder writes (protobuf's JSON mapping with hex ids) is the request."""
    request = otlp_pb.ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for fields in records:
        record = scope_logs.log_records.add()
        record.trace_id, record.span_id = fields["trace_id"], fields["span_id"]
        record.body.string_value = fields["body"]
        record.severity_number = fields["severity_number"]
        record.time_unix_nano = fields["time_unix_nano"]
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_logs in document.get("resourceLogs", []):
        for scope in resource_logs.get("scopeLogs", []):
            for record in scope.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    assert request_from_json(as_json(document)) == request
