"""gRPC-Web on the gRPC port, against the real server process, with a real HTTP/1.1 client
(http.client) on loopback sockets."""

from __future__ import annotations

import base64
import http.client
import socket
import struct
from collections.abc import Iterator

import grpc
import pytest
from support import RunningServer, seq_of

from log_server.generated import log_service_pb2 as pb
from log_server.generated import log_service_pb2_grpc as pb_grpc

ORIGIN = "http://localhost:5173"
LOG_MESSAGE = "/logservice.LogService/LogMessage"
LOG_BATCH = "/logservice.LogService/LogBatch"


def framed(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


def request_body(message: str) -> bytes:
    return framed(pb.LogRequest(message=message, level=pb.WARNING).SerializeToString())


def parse_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames, at = [], 0
    while at < len(body):
        flag, size = struct.unpack_from(">BI", body, at)
        frames.append((flag, body[at + 5 : at + 5 + size]))
        at += 5 + size
    assert at == len(body), "the body ends at a frame boundary"
    return frames


def trailers(block: bytes) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in block.decode().split("\r\n") if line)
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture
def web(server: RunningServer) -> Iterator[http.client.HTTPConnection]:
    assert server.grpc_port is not None
    connection = http.client.HTTPConnection("localhost", server.grpc_port, timeout=10)
    yield connection
    connection.close()


def call(
    connection: http.client.HTTPConnection,
    path: str,
    body: bytes,
    content_type: str = "application/grpc-web+proto",
    **headers: str,
) -> tuple[http.client.HTTPResponse, bytes]:
    sent = {"Content-Type": content_type, "X-Grpc-Web": "1", "Origin": ORIGIN}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    connection.request("POST", path, body, sent)
    response = connection.getresponse()
    return response, response.read()


@pytest.mark.parametrize("content_type", ["application/grpc-web", "application/grpc-web+proto"])
def test_binary_content_types_log_message(
    server: RunningServer, web: http.client.HTTPConnection, content_type: str
) -> None:
    response, body = call(web, LOG_MESSAGE, request_body(f"web {content_type}"), content_type)
    assert response.status == 200
    assert response.getheader("Content-Type") == content_type
    assert response.getheader("Access-Control-Allow-Origin") == ORIGIN
    (flag, message), (trailer_flag, block) = parse_frames(body)
    assert flag == 0 and pb.LogResponse.FromString(message).success
    assert trailer_flag == 0x80 and trailers(block)["grpc-status"] == "0"
    line = server.wait_for_line(f"web {content_type}")
    assert "WARNING" in line


@pytest.mark.parametrize(
    "content_type", ["application/grpc-web-text", "application/grpc-web-text+proto"]
)
def test_text_content_types_are_base64_both_ways(
    server: RunningServer, web: http.client.HTTPConnection, content_type: str
) -> None:
    body = base64.b64encode(request_body(f"text {content_type}"))
    response, answer = call(web, LOG_MESSAGE, body, content_type)
    assert response.status == 200 and response.getheader("Content-Type") == content_type
    (flag, message), (trailer_flag, block) = parse_frames(base64.b64decode(answer))
    assert pb.LogResponse.FromString(message).success
    assert trailers(block)["grpc-status"] == "0"
    server.wait_for_text(f"text {content_type}")


def test_log_batch_keeps_order_and_numbers(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    batch = pb.LogBatchRequest(requests=[pb.LogRequest(message=f"wb-{i}") for i in range(300)])
    response, body = call(web, LOG_BATCH, framed(batch.SerializeToString()))
    assert response.status == 200
    assert pb.LogResponse.FromString(parse_frames(body)[0][1]).success
    lines = [ln for ln in server.wait_for_text("wb-", 300) if "wb-" in ln]
    assert [int(ln.rsplit("-", 1)[1]) for ln in lines] == list(range(300))
    seqs = [seq_of(ln) for ln in lines]
    assert seqs == list(range(seqs[0], seqs[0] + 300))


def test_native_grpc_and_grpc_web_share_the_port(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    call(web, LOG_MESSAGE, request_body("shared web"))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        reply = pb_grpc.LogServiceStub(channel).LogMessage(
            pb.LogRequest(message="shared native"), timeout=10
        )
    assert reply.success
    server.wait_for_text("shared web")
    server.wait_for_text("shared native")


def test_unused_socket_is_harmless(server: RunningServer) -> None:
    """A connection that sends nothing, then one byte of the preface, then closes."""
    assert server.grpc_port is not None
    with socket.create_connection(("127.0.0.1", server.grpc_port)) as sock:
        sock.sendall(b"P")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.LogServiceStub(channel)
        assert stub.LogMessage(pb.LogRequest(message="after"), timeout=10).success
    server.wait_for_text("after")
