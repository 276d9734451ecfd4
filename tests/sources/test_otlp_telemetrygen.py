"""Go's `telemetrygen` (the OpenTelemetry Collector's load generator, built on the Go SDK's
OTLP log exporters) as a real client, over gRPC and over OTLP/HTTP. `make telemetrygen`
installs it into .tools/bin (.ci/run does); without it the test is skipped with the reason,
and with LOG_SERVER_TELEMETRYGEN_REQUIRED=1 (CI) it fails instead."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from otlp_support import SPAN_ID, TRACE_ID, check_attributes, check_fields, otlp_line
from support import ROOT, RunningServer

TELEMETRYGEN = ROOT / ".tools" / "bin" / "telemetrygen"
REQUIRED = os.environ.get("LOG_SERVER_TELEMETRYGEN_REQUIRED") == "1"


@pytest.fixture
def telemetrygen() -> str:
    if not TELEMETRYGEN.exists():
        reason = f"{TELEMETRYGEN} is not installed (make telemetrygen; needs Go)"
        if REQUIRED:
            pytest.fail(reason + ", and LOG_SERVER_TELEMETRYGEN_REQUIRED=1")
        pytest.skip(reason)
    return str(TELEMETRYGEN)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_telemetrygen_logs_land_field_by_field(
    server_factory: Callable[..., RunningServer], telemetrygen: str, transport: str
) -> None:
    server = server_factory("--format", "json")
    body = f"hello from telemetrygen over {transport}"
    attributes = {
        "code.file.path": '"main.go"',
        "code.function.name": '"work"',
        "code.line.number": "42",
        "thread.name": '"worker"',
        "exception.type": '"io.EOF"',
        "exception.message": '"unexpected end"',
        "user": '"ann"',
        "count": "3",
    }
    argv = [
        telemetrygen,
        "logs",
        "--otlp-endpoint",
        f"127.0.0.1:{server.grpc_port}",
        "--otlp-insecure",
        "--logs",
        "1",
        "--body",
        body,
        "--severity-number",
        "17",
        "--severity-text",
        "Error",
        "--service",
        "tg-svc",
        "--otlp-attributes",
        'host.name="tghost"',
        "--otlp-attributes",
        'deployment.environment="test"',
        "--trace-id",
        TRACE_ID,
        "--span-id",
        SPAN_ID,
        *(
            f
            for key, value in attributes.items()
            for f in ("--telemetry-attributes", f"{key}={value}")
        ),
    ]
    if transport == "http":
        argv.append("--otlp-http")
    before = datetime.now(UTC) - timedelta(seconds=1)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = otlp_line(server, body)
    check_fields(
        line,
        hostname="tghost",
        level="ERROR",
        filename="main.go",
        function_name="work",
        line_number="42",
        message=body,
        thread_id="",
        thread_name="worker",
        service_name="tg-svc",
        stack_trace="io.EOF: unexpected end",
    )
    assert line["logger_name"] == "", "telemetrygen sends no scope name"
    stamped = datetime.fromisoformat(line["timestamp"])
    assert before <= stamped <= datetime.now(UTC), "the record's own time, not zero"
    check_attributes(
        line, record={"user": "ann", "count": "3"}, resource={"deployment.environment": "test"}
    )
