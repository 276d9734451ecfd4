"""The OpenTelemetry JavaScript SDK (sdk-logs) under Node as a real client, with each of its
OTLP log exporters: gRPC, HTTP protobuf (gzip) and HTTP JSON. The npm package is
tests/otlp_js (`make otlp-js` runs npm ci; .ci/run does); without Node or its node_modules the
test is skipped with the reason, and with LOG_SERVER_OTLP_JS_REQUIRED=1 (CI) it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest
from otlp_support import (
    SPAN_ID,
    TIMESTAMP,
    TRACE_ID,
    check_attributes,
    check_fields,
    otlp_line,
)
from support import ROOT, RunningServer

PACKAGE = ROOT / "tests" / "otlp_js"
REQUIRED = os.environ.get("LOG_SERVER_OTLP_JS_REQUIRED") == "1"


@pytest.fixture
def node() -> str:
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed"
    elif not (PACKAGE / "node_modules" / "@opentelemetry" / "sdk-logs").is_dir():
        reason = f"{PACKAGE}/node_modules is missing (make otlp-js runs npm ci)"
    if reason is not None:
        if REQUIRED:
            pytest.fail(reason + ", and LOG_SERVER_OTLP_JS_REQUIRED=1")
        pytest.skip(reason)
    assert node is not None
    return node


@pytest.mark.parametrize("exporter", ["grpc", "proto", "json"])
def test_js_sdk_export_lands_field_by_field(
    server_factory: Callable[..., RunningServer], node: str, exporter: str
) -> None:
    server = server_factory("--format", "json")
    body = f"hello from the js sdk with {exporter}"
    done = subprocess.run(
        [node, "send_logs.mjs", exporter, str(server.grpc_port), body, TRACE_ID, SPAN_ID],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = otlp_line(server, body)
    check_fields(
        line,
        timestamp=TIMESTAMP,
        hostname="jshost",
        logger_name="js.scope",
        level="WARNING",
        filename="app.js",
        function_name="work",
        line_number="42",
        message=body,
        thread_id="7",
        thread_name="worker",
        service_name="js-svc",
    )
    stack = line["stack_trace"]
    assert stack.startswith("TypeError: bad value\n    at work ("), stack
    assert "send_logs.mjs" in stack
    check_attributes(
        line,
        record={"user": "ann", "count": "3"},
        resource={"deployment.environment": "test"},
    )
