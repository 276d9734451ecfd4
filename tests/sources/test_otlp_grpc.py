"""OTLP LogsService/Export over native gRPC against the real server (a plain grpcio client
with opentelemetry-proto's classes; the real SDKs' tests are test_otlp_*_sdk.py and
test_otlp_telemetrygen.py, backpressure and limits are in test_otlp_http.py)."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from support import RunningServer

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def test_export_lands_in_order_with_fields(server: RunningServer) -> None:
    req = otlp_pb.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="otlp-svc"))
    )
    sl = rl.scope_logs.add()
    sl.scope.name = "otlp.scope"
    for n in range(3):
        log = sl.log_records.add()
        log.severity_number = 9
        log.body.string_value = f"otlp message {n}"
        log.trace_id = bytes(range(16))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        export = channel.unary_unary(
            EXPORT,
            request_serializer=otlp_pb.ExportLogsServiceRequest.SerializeToString,
            response_deserializer=otlp_pb.ExportLogsServiceResponse.FromString,
        )
        reply = export(req, timeout=10)
    assert not reply.HasField("partial_success")
    lines = server.wait_for(lambda ls: sum("otlp message" in line for line in ls) == 3)
    ours = [line for line in lines if "otlp message" in line]
    assert [f"otlp message {n}" in line for n, line in enumerate(ours)] == [True] * 3
    for line in ours:
        assert "otlp.scope" in line and "INFO" in line and "service=otlp-svc" in line
        assert f"trace_id={bytes(range(16)).hex()}" in line
