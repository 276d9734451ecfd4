"""The OpenTelemetry Python SDK's OTLP gRPC log exporter as a real client (its own process:
the SDK's deprecation warnings are its business, not this suite's)."""

from __future__ import annotations

import subprocess
import sys

from support import RunningServer

CLIENT = """
import sys
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

resource = Resource.create({"service.name": "sdk-svc", "host.name": "sdkhost"})
provider = LoggerProvider(resource=resource)
exporter = OTLPLogExporter(endpoint="127.0.0.1:" + sys.argv[1], insecure=True)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
provider.get_logger("sdk.scope").emit(
    body="hello from sdk",
    severity_number=SeverityNumber.WARN,
    attributes={"user": "ann", "exception.type": "ValueError", "exception.message": "bad",
                "code.lineno": 3},
)
provider.shutdown()
"""


def test_python_sdk_export_lands_field_by_field(server: RunningServer) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CLIENT, str(server.grpc_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = server.wait_for(lambda ls: any("hello from sdk" in line for line in ls))
    (line,) = [line for line in lines if "hello from sdk" in line]
    fields = line.split()
    assert fields[2:5] == ["sdkhost", "sdk.scope", "WARNING"]
    assert fields[5] == "3" and fields[6:9] == ["hello", "from", "sdk"]
    assert 'stack="ValueError: bad"' in line and "service=sdk-svc" in line
    assert "user=ann" in line and "resource.telemetry.sdk.language=python" in line
