"""The compiled OTLP decoder (native/src/otlp.rs) against the reference, protocol/otlp.py +
format.py: the same lines for the same bytes whenever it maps a request, and None (the
Python path's turn) for what it leaves to it: other values than string/bool/int, text that is
not UTF-8, bytes that do not decode. The common SDK request is its own."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from log_server.core.format import FORMATTERS
from log_server.protocol.otlp import records_from_request

native = pytest.importorskip(
    "log_server_native", reason="the compiled decoder (native/) is not installed: run `make test`"
)
RECEIVED = "2026-11-27T12:00:00.000000+00:00"
FIRST_SEQ = 41


def python_lines(raw: bytes, line_format: str) -> tuple[bytes, int, list[str]]:
    refusals: list[str] = []
    records = records_from_request(otlp_pb.ExportLogsServiceRequest.FromString(raw), refusals)
    fmt = FORMATTERS[line_format]
    text = "".join(fmt(seq, r, RECEIVED) for seq, r in enumerate(records, FIRST_SEQ))
    return text.encode("utf-8", "backslashreplace"), len(records), refusals


def native_lines(raw: bytes, line_format: str) -> tuple[bytes, int, list[str]] | None:
    result = native.decode_otlp_logs(raw, FIRST_SEQ, RECEIVED, line_format)
    return None if result is None else (bytes(result[0]), result[1], list(result[2]))


any_text = st.text(max_size=20) | st.sampled_from(
    ["", "a\nb\x1b[2J\x00\x85\u2028", 'q"=x y', " WARN\x1c", "Error", "\u00a0info", "İ"]
)
keys = any_text | st.sampled_from(
    [
        "service.name",
        "host.name",
        "code.filepath",
        "code.file.path",
        "code.function",
        "code.function.name",
        "code.lineno",
        "code.line.number",
        "thread.id",
        "thread.name",
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    ]
)
simple_values = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), any_text),
    st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
    st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
    st.just(AnyValue()),
)
other_values = st.one_of(
    st.builds(lambda d: AnyValue(double_value=d), st.floats()),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=4)),
    st.builds(
        lambda s: AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=s)])), any_text
    ),
)
pairs = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), keys, simple_values), max_size=6)
many_pairs = st.builds(
    lambda n: [KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(n)],
    st.integers(125, 130),
)


@st.composite
def requests(draw: st.DrawFn, values: st.SearchStrategy[AnyValue] = simple_values) -> bytes:
    request = otlp_pb.ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(draw(pairs))
        for _ in range(draw(st.integers(0, 2))):
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = draw(any_text)
            scope_logs.scope.version = draw(any_text)
            scope_logs.scope.attributes.extend(draw(pairs))
            for _ in range(draw(st.integers(0, 3))):
                log = scope_logs.log_records.add()
                log.time_unix_nano = draw(st.sampled_from([0, 1, 1_700_000_000_123_456_789]))
                log.observed_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                log.severity_number = draw(st.integers(-2, 30))  # type: ignore[assignment]
                log.severity_text = draw(any_text)
                log.body.CopyFrom(draw(values))
                log.attributes.extend(draw(pairs | many_pairs))
                log.trace_id = draw(st.binary(max_size=16))
                log.span_id = draw(st.binary(max_size=8))
    return bytes(request.SerializeToString())


@pytest.mark.parametrize("line_format", ["text", "json"])
@settings(max_examples=150, deadline=None)
@given(raw=requests())
def test_same_lines_as_the_python_path(raw: bytes, line_format: str) -> None:
    mapped = native_lines(raw, line_format)
    expected = python_lines(raw, line_format)
    if mapped is None:
        # Only for severity text Python strips and lowers its own (Unicode) way.
        request = otlp_pb.ExportLogsServiceRequest.FromString(raw)
        texts = [
            log.severity_text
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for log in sl.log_records
            if log.severity_number <= 0
        ]
        assert any(not t.isascii() for t in texts), "left to Python without a reason"
        return
    assert mapped == expected


@settings(max_examples=50, deadline=None)
@given(raw=requests(values=other_values))
def test_other_values_are_left_to_python(raw: bytes) -> None:
    request = otlp_pb.ExportLogsServiceRequest.FromString(raw)
    has_records = any(sl.log_records for rl in request.resource_logs for sl in rl.scope_logs)
    mapped = native_lines(raw, "text")
    if has_records:
        assert mapped is None
    else:
        assert mapped == python_lines(raw, "text")


def test_an_sdk_request_is_mapped_natively() -> None:
    request = otlp_pb.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        [
            KeyValue(key="service.name", value=AnyValue(string_value="svc")),
            KeyValue(key="telemetry.sdk.language", value=AnyValue(string_value="python")),
        ]
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "app"
    log = scope_logs.log_records.add()
    log.time_unix_nano = 1_700_000_000_123_456_789
    log.severity_number = 13  # type: ignore[assignment]
    log.body.string_value = "hello"
    log.trace_id = bytes(range(16))
    log.attributes.append(KeyValue(key="code.line.number", value=AnyValue(int_value=3)))
    raw = request.SerializeToString()
    assert native_lines(raw, "text") == python_lines(raw, "text")
    lines, count, refusals = native_lines(raw, "text") or (b"", 0, [])
    assert count == 1 and refusals == []
    assert b"2023-11-14T22:13:20.123456+00:00" in lines and b"WARNING" in lines


NOT_UTF8_BODY = b"\x2a\x03\x0a\x01\xff"  # LogRecord.body = AnyValue(string_value=b"\xff")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\xff\xff\xff",
        b"\x0a\x09\x12\x07\x12\x05" + NOT_UTF8_BODY,
    ],
    ids=["truncated", "not-utf8"],
)
def test_what_python_refuses_is_left_to_it(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        otlp_pb.ExportLogsServiceRequest.FromString(raw)
    assert native_lines(raw, "text") is None


@settings(max_examples=300, deadline=None)
@given(raw=requests(), data=st.data())
def test_damaged_bytes_never_break_either_path(raw: bytes, data: st.DataObject) -> None:
    """Bytes cut short or flipped: the compiled decoder gives None or the Python lines, and
    never raises; where it gives None, Python maps them or raises DecodeError."""
    damaged = bytearray(raw)
    if damaged:
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, len(damaged) - 1))
            damaged[at] = data.draw(st.integers(0, 255))
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    blob = bytes(damaged)
    mapped = native_lines(blob, "text")
    try:
        expected = python_lines(blob, "text")
    except DecodeError:
        assert mapped is None
        return
    assert mapped is None or mapped == expected
