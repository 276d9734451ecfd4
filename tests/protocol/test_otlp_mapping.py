"""protocol/otlp.py: ExportLogsServiceRequest -> LogRecord, no sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from log_server.core.records import Level
from log_server.protocol.otlp import level_for, records_from_request


def kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(
        [kv("service.name", "svc"), kv("host.name", "box"), kv("deployment", "prod")]
    )
    sl = rl.scope_logs.add()
    sl.scope.name = "my.logger"
    sl.scope.version = "1.2"
    log = sl.log_records.add()
    log.time_unix_nano = 1_700_000_000_123_456_789
    log.severity_number = 17
    log.body.string_value = "boom"
    log.trace_id = bytes(range(16))
    log.span_id = bytes(range(8))
    log.attributes.extend(
        [
            kv("code.filepath", "app.py"),
            kv("code.function.name", "run"),
            kv("code.lineno", 42),
            kv("thread.id", 7),
            kv("thread.name", "main"),
            kv("exception.type", "ValueError"),
            kv("exception.message", "bad"),
            kv("user", "ann"),
        ]
    )
    second = sl.log_records.add()
    second.observed_time_unix_nano = 1_700_000_001_000_000_000
    second.body.kvlist_value.values.extend([kv("a", 1)])
    return req


def test_fields_are_mapped() -> None:
    first, second = records_from_request(request())
    assert first.service_name == "svc" and first.hostname == "box"
    assert first.logger_name == "my.logger"
    assert first.level == Level.ERROR
    assert first.message == "boom"
    assert first.timestamp == "2023-11-14T22:13:20.123456+00:00"
    assert (first.filename, first.function_name, first.line_number) == ("app.py", "run", "42")
    assert (first.thread_id, first.thread_name) == ("7", "main")
    assert first.stack_trace == "ValueError: bad"
    assert first.attributes == (
        ("trace_id", bytes(range(16)).hex()),
        ("span_id", bytes(range(8)).hex()),
        ("user", "ann"),
        ("resource.deployment", "prod"),
        ("scope.version", "1.2"),
    )
    assert second.message == '{"a":1}'
    assert second.timestamp == "2023-11-14T22:13:21.000000+00:00"


def test_severity_table() -> None:
    assert [level_for(n, "") for n in (0, 1, 5, 9, 13, 17, 21, 24)] == [
        Level.NOTSET, Level.DEBUG, Level.DEBUG, Level.INFO,
        Level.WARNING, Level.ERROR, Level.CRITICAL, Level.CRITICAL,
    ]  # fmt: skip
    assert level_for(0, "WARN") == Level.WARNING
    assert level_for(0, "nonsense") == Level.NOTSET


@given(st.lists(st.text(), max_size=20))
def test_order_and_bodies_kept(bodies: list[str]) -> None:
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for body in bodies:
        sl.log_records.add().body.string_value = body
    assert [r.message for r in records_from_request(req)] == bodies
