"""OTLP LogsService/Export over native gRPC against the real server (a plain grpcio client
with opentelemetry-proto's classes; the real SDKs' tests are test_otlp_*_sdk.py and
test_otlp_telemetrygen.py, backpressure and limits are in test_otlp_http.py)."""

from __future__ import annotations

import grpc
import pytest
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


def test_refusals_partial_success_and_values_left_to_python(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Bytes that are not OTLP and too many records are INVALID_ARGUMENT; replaced attributes
    give a partial_success warning; a request with an array body (mapped by the Python path,
    not the compiled one) lands as JSON, in order with the records before it."""
    server = server_factory("--grpc_max_batch", "3")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        raw_export = channel.unary_unary(EXPORT)
        with pytest.raises(grpc.RpcError) as caught:
            raw_export(b"\x0a\xff\xff\xff", timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "not an OTLP ExportLogsServiceRequest" in (caught.value.details() or "")
        export = channel.unary_unary(
            EXPORT,
            request_serializer=otlp_pb.ExportLogsServiceRequest.SerializeToString,
            response_deserializer=otlp_pb.ExportLogsServiceResponse.FromString,
        )
        req = otlp_pb.ExportLogsServiceRequest()
        sl = req.resource_logs.add().scope_logs.add()
        for n in range(4):
            sl.log_records.add().body.string_value = f"over the limit {n}"
        with pytest.raises(grpc.RpcError) as caught:
            export(req, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "4 log records (limit 3, --grpc_max_batch)" in (caught.value.details() or "")
        del sl.log_records[:]
        sl.log_records.add().body.string_value = "plain before"
        arrayed = sl.log_records.add()
        arrayed.body.array_value.values.add().string_value = "in an array"
        arrayed.body.array_value.values.add().int_value = 7
        crowded = sl.log_records.add()
        crowded.body.string_value = "crowded"
        for n in range(129):
            crowded.attributes.append(KeyValue(key=f"k{n}", value=AnyValue(int_value=n)))
        reply = export(req, timeout=10)
    assert reply.partial_success.rejected_log_records == 0
    assert "1 with their attributes replaced" in reply.partial_success.error_message
    lines = server.wait_for_text("crowded")
    ours = [ln for ln in lines if "plain before" in ln or "in an array" in ln or "crowded" in ln]
    assert len(ours) == 3 and "plain before" in ours[0]
    assert ours[1].endswith(' ["in an array",7]'), "the body as JSON"
    assert 'attributes_refused="129 attributes (limit 128)"' in ours[2]
    assert "over the limit" not in "".join(lines)
