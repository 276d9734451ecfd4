"""The OpenTelemetry Python SDK's OTLP log exporters as real clients: gRPC
(opentelemetry-exporter-otlp-proto-grpc) and HTTP with gzip (-proto-http), each in its own
process (the SDK's deprecation warnings are its business, not this suite's)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from otlp_support import (
    SPAN_ID,
    TIME_UNIX_NANO,
    TIMESTAMP,
    TRACE_ID,
    check_attributes,
    check_fields,
    otlp_line,
)
from support import RunningServer

CLIENT = f"""
import sys
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

kind, port, body = sys.argv[1:4]
if kind == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint="127.0.0.1:" + port, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(
        endpoint="http://127.0.0.1:" + port + "/v1/logs", compression=Compression.Gzip
    )
resource = Resource.create(
    {{"service.name": "py-svc", "host.name": "pyhost", "deployment.environment": "test"}}
)
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
span = NonRecordingSpan(
    SpanContext(0x{TRACE_ID}, 0x{SPAN_ID}, is_remote=False, trace_flags=TraceFlags(1))
)
try:
    raise ValueError("bad value")
except ValueError as exc:
    error = exc
provider.get_logger("py.scope").emit(
    timestamp={TIME_UNIX_NANO},
    context=set_span_in_context(span),
    severity_number=SeverityNumber.WARN,
    body=body,
    attributes={{
        "code.file.path": "app.py", "code.function.name": "work", "code.line.number": 42,
        "thread.id": 7, "thread.name": "worker", "user": "ann", "count": 3,
    }},
    exception=error,
)
provider.shutdown()
"""


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_python_sdk_export_lands_field_by_field(
    server_factory: Callable[..., RunningServer], kind: str
) -> None:
    server = server_factory("--format", "json")
    body = f"hello from the python sdk over {kind}"
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CLIENT, kind, str(server.grpc_port), body],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Failed to export" not in done.stderr, done.stderr
    line = otlp_line(server, body)
    check_fields(
        line,
        timestamp=TIMESTAMP,
        hostname="pyhost",
        logger_name="py.scope",
        level="WARNING",
        filename="app.py",
        function_name="work",
        line_number="42",
        message=body,
        thread_id="7",
        thread_name="worker",
        service_name="py-svc",
    )
    stack = line["stack_trace"]
    assert stack.startswith("Traceback (most recent call last):"), stack
    assert stack.rstrip().endswith("ValueError: bad value"), stack
    check_attributes(
        line,
        record={"user": "ann", "count": "3"},
        resource={"deployment.environment": "test", "telemetry.sdk.language": "python"},
    )
