"""OTLP/HTTP `POST /v1/logs` on the gRPC port, against the real server process, with a real
HTTP/1.1 client (http.client) on loopback: bodies, answers and limits as the OTLP/HTTP
specification and docs/protocol.md say. The real SDKs' tests are test_otlp_*_sdk.py."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import random
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from support import RunningServer, full_device_at

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def export_request(*bodies: str, attributes: int = 0) -> otlp_pb.ExportLogsServiceRequest:
    request = otlp_pb.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="http-svc"))
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "http.scope"
    for body in bodies:
        record = scope_logs.log_records.add()
        record.severity_number = 13
        record.body.string_value = body
        record.trace_id = bytes.fromhex(TRACE_ID)
        for n in range(attributes):
            record.attributes.append(KeyValue(key=f"a{n}", value=AnyValue(int_value=n)))
    return request


def json_request(body: str) -> dict[str, object]:
    record = {
        "timeUnixNano": "1700000000000000000",
        "severityNumber": 17,
        "body": {"kvlistValue": {"values": [{"key": "text", "value": {"stringValue": body}}]}},
        "traceId": TRACE_ID,
        "spanId": "eee19b7ec3c1b174",
        "attributes": [{"key": "n", "value": {"intValue": "5"}}],
    }
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "host.name", "value": {"stringValue": "jsonhost"}}]
                },
                "scopeLogs": [{"scope": {"name": "json.scope"}, "logRecords": [record]}],
            }
        ]
    }


@pytest.fixture
def web(server: RunningServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=30)
    yield connection
    connection.close()


def post(
    connection: http.client.HTTPConnection,
    body: bytes,
    content_type: str = PROTOBUF,
    path: str = "/v1/logs",
    **headers: str,
) -> tuple[http.client.HTTPResponse, bytes]:
    sent = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    connection.request("POST", path, body, sent)
    response = connection.getresponse()
    return response, response.read()


def error_of(response: http.client.HTTPResponse, body: bytes) -> status_pb2.Status:
    assert response.getheader("Content-Type") == PROTOBUF
    return status_pb2.Status.FromString(body)


@pytest.mark.parametrize("decoder", ["native", "python"])
def test_protobuf_gzip_lands_in_order(
    server_factory: Callable[..., RunningServer], decoder: str
) -> None:
    """With either decoder (the compiled one maps this request; --decoder python maps all)."""
    server = server_factory("--decoder", decoder)
    web = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=30)
    raw = export_request(*(f"http record {n}" for n in range(3))).SerializeToString()
    response, body = post(web, gzip.compress(raw), Content_Encoding="gzip")
    assert response.status == 200 and response.getheader("Content-Type") == PROTOBUF
    assert not otlp_pb.ExportLogsServiceResponse.FromString(body).HasField("partial_success")
    lines = server.wait_for(lambda ls: sum("http record" in ln for ln in ls) == 3)
    ours = [ln for ln in lines if "http record" in ln]
    assert [f"http record {n}" in ln for n, ln in enumerate(ours)] == [True] * 3
    for line in ours:
        fields = line.split()
        assert fields[2:4] == ["http.scope", "WARNING"], "no hostname: the column is blank"
        assert f"service=http-svc trace_id={TRACE_ID}" in line
    web.close()


def test_otlp_json_lands_with_hex_ids(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    response, body = post(web, json.dumps(json_request("json record")).encode(), JSON)
    assert response.status == 200 and response.getheader("Content-Type") == JSON
    assert json.loads(body) == {}
    line = server.wait_for_line("json record")
    fields = line.split()
    assert fields[1:5] == ["2023-11-14T22:13:20.000000+00:00", "jsonhost", "json.scope", "ERROR"]
    assert '{"text":"json record"}' in line
    assert f"trace_id={TRACE_ID} span_id=eee19b7ec3c1b174 n=5" in line


def test_replaced_attributes_get_a_partial_success_warning(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    raw = export_request("too many attributes", "fine", attributes=128).SerializeToString()
    response, body = post(web, raw)
    assert response.status == 200
    partial = otlp_pb.ExportLogsServiceResponse.FromString(body).partial_success
    assert partial.rejected_log_records == 0, "every record is written"
    assert "2 with their attributes replaced" in partial.error_message
    assert "129 attributes (limit 128)" in partial.error_message, "trace_id makes 129"
    line = server.wait_for_line("too many attributes")
    assert 'attributes_refused="129 attributes (limit 128)"' in line


def test_bad_bodies_are_400_and_the_connection_goes_on(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    response, body = post(web, b"\x0a\xff\xff\xff")
    assert response.status == 400
    error = error_of(response, body)
    assert error.code == 3 and "not an OTLP ExportLogsServiceRequest" in error.message
    response, body = post(web, b"{not json", JSON)
    assert response.status == 400 and response.getheader("Content-Type") == JSON
    assert json.loads(body)["message"].startswith("body is not JSON")
    response, body = post(web, b"not gzip", Content_Encoding="gzip")
    assert response.status == 400 and "gzip" in error_of(response, body).message
    response, _ = post(web, export_request("after the refusals").SerializeToString())
    assert response.status == 200
    server.wait_for_text("after the refusals")
    assert server.wait_for_text("OTLP/HTTP /v1/logs: not an OTLP ExportLogsServiceRequest")


def test_what_is_not_served_is_told(web: http.client.HTTPConnection) -> None:
    raw = export_request("never").SerializeToString()
    response, body = post(web, raw, "text/plain")
    assert response.status == 415 and "is not OTLP/HTTP" in error_of(response, body).message
    response, body = post(web, raw, Content_Encoding="br")
    assert response.status == 415 and "'br'" in error_of(response, body).message
    response, body = post(web, b"{}", JSON, path="/v1/traces")
    assert response.status == 404 and response.getheader("Content-Type") == JSON
    assert "OTLP logs only" in json.loads(body)["message"]
    web.request("GET", "/v1/logs")
    response = web.getresponse()
    response.read()
    assert response.status == 405 and response.getheader("Allow") == "POST, OPTIONS"


def test_a_browser_preflight_for_v1_logs(web: http.client.HTTPConnection) -> None:
    origin = "http://localhost:5173"
    web.request(
        "OPTIONS",
        "/v1/logs",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    response = web.getresponse()
    response.read()
    assert response.status == 204
    assert response.getheader("Access-Control-Allow-Origin") == origin
    assert "content-type" in (response.getheader("Access-Control-Allow-Headers") or "")
    response, _ = post(web, export_request("from a page").SerializeToString(), Origin=origin)
    assert response.status == 200 and response.getheader("Access-Control-Allow-Origin") == origin


def test_size_and_count_limits(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory("--grpc_max_request_size", "64KB", "--grpc_max_batch", "2")
    web = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=30)
    response, body = post(web, export_request("x" * 70_000).SerializeToString())
    assert response.status == 413 and "larger than the limit" in error_of(response, body).message
    web.close()  # a refusal before the body closes the connection
    web = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=30)
    bomb = gzip.compress(export_request("y" * 200_000).SerializeToString())
    assert len(bomb) < 64_000
    response, body = post(web, bomb, Content_Encoding="gzip")
    assert response.status == 413 and "inflates to more than" in error_of(response, body).message
    response, body = post(web, export_request("a", "b", "c").SerializeToString())
    assert response.status == 400 and "--grpc_max_batch" in error_of(response, body).message
    response, _ = post(web, export_request("two", "fit").SerializeToString())
    assert response.status == 200
    server.wait_for_text("fit")
    web.close()


def test_backpressure_is_429_then_503_with_retry_after(
    server_factory: Callable[..., RunningServer],
) -> None:
    """The writer stalls (every write fails) and the queue fills: a request past what may wait
    is told 429 at once (gRPC: RESOURCE_EXHAUSTED with RetryInfo), one that waits in vain
    503 after the admission wait; both say when to retry; the disk recovers, 200 again."""
    server = server_factory("--max_queue_bytes", "64KB")
    active = server.active_log
    os.replace(active, active.with_name("moved.log"))
    full_device_at(active)
    web = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=30)
    filler = export_request(*(["q" * 1000] * 100)).SerializeToString()
    response, _ = post(web, filler)
    assert response.status == 200
    big = export_request("z" * 70_000).SerializeToString()
    response, body = post(web, big)
    assert response.status == 429 and response.getheader("Retry-After") == "1"
    error = error_of(response, body)
    info = error_details_pb2.RetryInfo()
    assert error.details[0].Unpack(info) and info.retry_delay.seconds == 1
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        export = channel.unary_unary(EXPORT)
        with pytest.raises(grpc.RpcError) as caught:
            export(big, timeout=10)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(caught.value.trailing_metadata() or ())["grpc-status-details-bin"]
    assert status_pb2.Status.FromString(details).details[0].Unpack(info)
    assert info.retry_delay.seconds == 1
    response, body = post(web, export_request("no room").SerializeToString())
    assert response.status == 503 and response.getheader("Retry-After") == "5"
    assert "not keeping up" in error_of(response, body).message, "it waited for room"
    os.unlink(active)  # the disk recovers
    response, _ = post(web, export_request("room again").SerializeToString())
    assert response.status == 200
    server.wait_for_text("room again")
    web.close()


def test_damaged_bodies_get_answers_and_the_server_goes_on(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    """200 bodies random, flipped or cut, as protobuf and JSON, plain and gzipped, on one
    keep-alive connection: each gets 200 or 400 with a Status, and a good one lands after."""
    rng = random.Random(16)
    good_proto = export_request("seed a", "seed b", attributes=3).SerializeToString()
    good_json = json.dumps(json_request("seed c")).encode()
    statuses = set()
    for n in range(200):
        content_type = PROTOBUF if n % 2 else JSON
        damaged = bytearray(good_proto if n % 2 else good_json)
        kind = n // 2 % 4
        if kind == 0:
            damaged = bytearray(rng.randbytes(rng.randint(0, 300)))
        elif kind == 3:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            for _ in range(kind):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        body = bytes(damaged)
        headers = {}
        if n % 3 == 0:
            body = gzip.compress(body)
            headers["Content_Encoding"] = "gzip"
        response, answer = post(web, body, content_type, **headers)
        statuses.add(response.status)
        assert response.status in (200, 400), (n, response.status, answer[:200])
        if response.status == 400:
            assert response.getheader("Content-Type") == content_type
            message = (
                json.loads(answer)["message"]
                if content_type == JSON
                else status_pb2.Status.FromString(answer).message
            )
            assert message
    assert statuses == {200, 400}, "both kinds were sent"
    response, _ = post(web, export_request("good after the damage").SerializeToString())
    assert response.status == 200
    server.wait_for_text("good after the damage")
    assert server.health().startswith("OK ")
