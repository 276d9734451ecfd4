"""gRPC-Web on the gRPC port, against the real server process, with a real HTTP/1.1 client
(http.client) on loopback sockets."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from support import RunningServer, full_device_at, seq_of

from log_server.generated import log_service_pb2 as pb
from log_server.generated import log_service_pb2_grpc as pb_grpc
from log_server.sources.grpc_web import PRIVATE_DIR_PREFIX, remove_stale_private_dirs

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


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh socket, read until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_preflight_from_an_allowed_origin(web: http.client.HTTPConnection) -> None:
    web.request(
        "OPTIONS",
        LOG_BATCH,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent",
        },
    )
    response = web.getresponse()
    response.read()
    assert response.status == 204
    assert response.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert "POST" in response.getheader("Access-Control-Allow-Methods", "")
    allowed = response.getheader("Access-Control-Allow-Headers", "")
    assert {"content-type", "x-grpc-web", "x-user-agent"} <= {h.strip() for h in allowed.split(",")}


def test_refused_origin_writes_nothing(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    for method in ("OPTIONS", "POST"):
        web.request(
            method,
            LOG_MESSAGE,
            request_body("from evil") if method == "POST" else None,
            {"Origin": "http://evil.example", "Content-Type": "application/grpc-web+proto"},
        )
        response = web.getresponse()
        response.read()
        assert response.status == 403
        assert response.getheader("Access-Control-Allow-Origin") is None
        web.close()
    call(web, LOG_MESSAGE, request_body("after evil"))
    lines = server.wait_for_text("after evil")
    assert not any("from evil" in line for line in lines)
    assert any("Origin 'http://evil.example' is not allowed" in line for line in lines)


def test_refused_host_writes_nothing(server: RunningServer) -> None:
    assert server.grpc_port is not None
    connection = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=10)
    connection.putrequest("POST", LOG_MESSAGE, skip_host=True)
    connection.putheader("Host", f"rebound.example:{server.grpc_port}")
    connection.putheader("Content-Type", "application/grpc-web+proto")
    body = request_body("rebound")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 403 and response.getheader("grpc-status") == "7"
    lines = server.wait_for_text("is not allowed (DNS rebinding guard")
    assert not any("rebound\n" in line or line.endswith(" rebound") for line in lines)


def test_allowed_hosts_flag(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--allowed_hosts", "logs.internal")
    connection = http.client.HTTPConnection("127.0.0.1", server.grpc_port, timeout=10)
    connection.putrequest("POST", LOG_MESSAGE, skip_host=True)
    connection.putheader("Host", "logs.internal")
    connection.putheader("Content-Type", "application/grpc-web")
    body = request_body("via configured host")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    assert connection.getresponse().status == 200
    connection.close()
    server.wait_for_text("via configured host")
    # localhost is no longer on the list once the list is given
    web = http.client.HTTPConnection("localhost", server.grpc_port, timeout=10)
    response, _ = call(web, LOG_MESSAGE, b"")
    web.close()
    assert response.status == 403


def test_cors_origins_flag(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--cors_origins", "https://app.example")
    web = http.client.HTTPConnection("localhost", server.grpc_port, timeout=10)
    response, _ = call(web, LOG_MESSAGE, request_body("app origin"), Origin="https://app.example")
    assert response.getheader("Access-Control-Allow-Origin") == "https://app.example"
    response, _ = call(web, LOG_MESSAGE, request_body("default origin"))
    assert response.status == 403
    web.close()
    server.wait_for_text("app origin")


def test_wrong_content_type_is_415_and_keeps_the_connection(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    response, _ = call(web, LOG_MESSAGE, b'{"message": "json"}', "application/json")
    assert response.status == 415
    sock = web.sock
    response, _ = call(web, LOG_MESSAGE, request_body("after 415"))
    assert response.status == 200 and web.sock is sock, "same connection"
    server.wait_for_text("after 415")


def test_keep_alive_serves_many_requests_on_one_connection(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    call(web, LOG_MESSAGE, request_body("ka-0"))
    sock = web.sock
    for i in range(1, 50):
        path = LOG_BATCH if i % 2 else LOG_MESSAGE
        body = (
            framed(
                pb.LogBatchRequest(requests=[pb.LogRequest(message=f"ka-{i}")]).SerializeToString()
            )
            if path == LOG_BATCH
            else request_body(f"ka-{i}")
        )
        response, _ = call(web, path, body)
        assert response.status == 200
    assert web.sock is sock, "one connection for all 50"
    lines = [ln for ln in server.wait_for_text("ka-", 50) if "ka-" in ln]
    assert [int(ln.rsplit("-", 1)[1]) for ln in lines] == list(range(50))


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    assert server.grpc_port is not None
    requests = b""
    for i in range(5):
        body = request_body(f"piped-{i}")
        requests += (
            f"POST {LOG_MESSAGE} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/grpc-web\r\nContent-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if i == 4 else "")
            + "\r\n"
        ).encode() + body
    answer = raw_exchange(server.grpc_port, requests)
    assert answer.count(b"HTTP/1.1 200 ") == 5
    lines = [ln for ln in server.wait_for_text("piped-", 5) if "piped-" in ln]
    assert [int(ln.rsplit("-", 1)[1]) for ln in lines] == list(range(5))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\x00\x00\x00", "3"),  # cut in the frame header
        (framed(b"x" * 10)[:-3], "3"),  # cut in the message
        (framed(b"\x0a\x02hi", flag=1), "3"),  # compressed, not negotiated
        (framed(b"\xff\xff\xff"), "3"),  # not a LogRequest
        (framed(b"") + framed(b""), "3"),  # two messages in a unary call
    ],
)
def test_bad_frames_get_invalid_argument(
    server: RunningServer, web: http.client.HTTPConnection, body: bytes, status: str
) -> None:
    response, answer = call(web, LOG_MESSAGE, body)
    assert response.status == 200 and answer == b""
    assert response.getheader("grpc-status") == status
    assert response.getheader("grpc-message")
    response, _ = call(web, LOG_MESSAGE, request_body("after a bad frame"))
    assert response.status == 200
    server.wait_for_text("after a bad frame")


def test_bad_base64_gets_invalid_argument(web: http.client.HTTPConnection) -> None:
    response, _ = call(web, LOG_MESSAGE, b"!!!!", "application/grpc-web-text")
    assert response.getheader("grpc-status") == "3"


def test_stream_logs_is_unimplemented_over_grpc_web(web: http.client.HTTPConnection) -> None:
    response, _ = call(web, "/logservice.LogService/StreamLogs", request_body("streamed"))
    assert response.status == 200 and response.getheader("grpc-status") == "12"
    assert "LogBatch" in response.getheader("grpc-message", "")


def test_oversized_body_is_413_before_it_is_read(server: RunningServer) -> None:
    assert server.grpc_port is not None
    head = (
        f"POST {LOG_BATCH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc-web\r\n"
        f"Content-Length: {6 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server.grpc_port, head + b"\x00" * 1000)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"grpc-status: 8" in answer


def test_message_above_4_mib_is_resource_exhausted(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    """The frame's own length is checked too, against grpcio's 4 MiB."""
    response, _ = call(web, LOG_BATCH, struct.pack(">BI", 0, 4 * 1024 * 1024 + 1) + b"\x00")
    assert response.getheader("grpc-status") == "8"


def test_message_of_almost_4_mib_is_accepted(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    big = pb.LogRequest(message="big " + "x" * (4 * 1024 * 1024 - 100)).SerializeToString()
    assert len(big) < 4 * 1024 * 1024
    response, _ = call(web, LOG_MESSAGE, framed(big))
    assert response.status == 200 and response.getheader("grpc-status") is None
    response, _ = call(web, LOG_MESSAGE, base64.b64encode(framed(big)), "application/grpc-web-text")
    assert response.status == 200 and response.getheader("grpc-status") is None
    server.wait_for_text("big xxxx", 2)


def test_garbage_gets_400_and_the_server_goes_on(server: RunningServer) -> None:
    assert server.grpc_port is not None
    answer = raw_exchange(server.grpc_port, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.LogServiceStub(channel)
        assert stub.LogMessage(pb.LogRequest(message="after garbage"), timeout=10).success


def test_refusals_are_logged_once_not_per_request(
    server: RunningServer, web: http.client.HTTPConnection
) -> None:
    for _ in range(20):
        response, _ = call(web, LOG_MESSAGE, b"{}", "text/plain")
        assert response.status == 415
    call(web, LOG_MESSAGE, request_body("after the refusals"))
    lines = server.wait_for_text("after the refusals")
    refusals = [ln for ln in lines if "content type 'text/plain' is not gRPC-Web" in ln]
    assert 1 <= len(refusals) < 20, refusals


def test_log_ack_durable_waits_for_the_disk(server_factory) -> None:  # type: ignore[no-untyped-def]
    import os

    server = server_factory()
    active = server.active_log
    os.replace(active, active.with_name("moved.log"))
    full_device_at(active)
    web = http.client.HTTPConnection("localhost", server.grpc_port, timeout=10)
    response, _ = call(web, LOG_MESSAGE, request_body("plain, while failing"))
    assert response.status == 200 and response.getheader("grpc-status") is None
    response, _ = call(
        web, LOG_MESSAGE, request_body("acked, while failing"), log_ack="durable", grpc_timeout="1S"
    )
    assert response.getheader("grpc-status") == "4"  # DEADLINE_EXCEEDED
    os.unlink(active)  # the disk recovers
    response, _ = call(web, LOG_MESSAGE, request_body("acked after"), log_ack="durable")
    assert response.status == 200 and response.getheader("grpc-status") is None
    assert any("acked after" in ln for ln in server.lines()), "on disk when answered"
    web.close()


def test_full_queue_gets_unavailable_after_the_call_deadline(server_factory) -> None:  # type: ignore[no-untyped-def]
    import os

    server = server_factory("--max_queue_bytes", "64KB")
    active = server.active_log
    os.replace(active, active.with_name("moved.log"))
    full_device_at(active)
    web = http.client.HTTPConnection("localhost", server.grpc_port, timeout=30)
    batch = pb.LogBatchRequest(requests=[pb.LogRequest(message="q" * 1000)] * 200)
    response, _ = call(web, LOG_BATCH, framed(batch.SerializeToString()))
    assert response.status == 200 and response.getheader("grpc-status") is None
    response, _ = call(web, LOG_MESSAGE, request_body("no room"), grpc_timeout="500m")
    assert response.getheader("grpc-status") == "14"  # UNAVAILABLE
    os.unlink(active)
    response, _ = call(web, LOG_MESSAGE, request_body("room again"), grpc_timeout="20S")
    assert response.getheader("grpc-status") is None
    server.wait_for_text("room again")
    web.close()


def test_connection_limit_covers_both_protocols(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--max_connections", "2")
    held = [socket.create_connection(("127.0.0.1", server.grpc_port)) for _ in range(2)]
    try:
        assert raw_exchange(server.grpc_port, b"") == b"", "the third is closed at once"
        server.wait_for_text("2 connections open on the gRPC port")
    finally:
        for sock in held:
            sock.close()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.LogServiceStub(channel)
        assert stub.LogMessage(pb.LogRequest(message="after the limit"), timeout=10).success


def test_a_request_stalled_midway_is_closed(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--read_timeout", "1")
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=20) as sock:
        sock.sendall(b"POST /logservice.LogService/LogMessage HTTP/1.1\r\nHost: local")
        assert sock.recv(1000) == b"", "closed by the server"
    server.wait_for_text("stalled for")


def test_no_grpc_web_lets_grpcio_bind_the_port(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--no_grpc_web")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.LogServiceStub(channel)
        assert stub.LogMessage(pb.LogRequest(message="direct"), timeout=10).success
    web = http.client.HTTPConnection("localhost", server.grpc_port, timeout=10)
    try:
        response, _ = call(web, LOG_MESSAGE, request_body("web without front"))
        served = response.status == 200 and response.getheader("grpc-status") is None
    except (http.client.HTTPException, OSError):
        served = False
    finally:
        web.close()
    assert not served
    assert "grpc_web=False" in server.wait_for_line("listening on")


def test_refusal_log_is_rate_limited_per_kind() -> None:
    from log_server.sources.grpc_web import RefusalLog

    class Events:
        def __init__(self) -> None:
            self.lines: list[tuple[str, int]] = []

        def grpc_web_refused(self, peer: str, reason: str, suppressed: int) -> None:
            self.lines.append((reason, suppressed))

    now = [100.0]
    events = Events()
    log = RefusalLog(events, interval_s=10.0, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(5):
        log.refuse("p", "origin", "o")
    log.refuse("p", "host", "h")
    now[0] += 10.0
    log.refuse("p", "origin", "o")
    assert events.lines == [("o", 0), ("h", 0), ("o", 4)]
    assert log.refused == 7


def test_relayed_native_connections_count_against_the_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Connections handed to the relay still count: two native gRPC channels fill a limit
    of 2, and a third connection is closed at once."""
    server = server_factory("--max_connections", "2")
    own_connection = [("grpc.use_local_subchannel_pool", 1)]  # channels share none
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=own_connection)
        for _ in range(2)
    ]
    try:
        for i, channel in enumerate(channels):
            stub = pb_grpc.LogServiceStub(channel)
            assert stub.LogMessage(pb.LogRequest(message=f"held-{i}"), timeout=10).success
        assert raw_exchange(server.grpc_port, b"") == b""
        server.wait_for_text("2 connections open on the gRPC port")
    finally:
        for channel in channels:
            channel.close()


def test_asyncio_relay_where_the_compiled_one_is_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The Python relay (used without log_server_native), in process: real grpcio behind the
    real front, a real grpc.aio client; unary, LogBatch and StreamLogs go through."""
    import asyncio

    from log_server.core.format import FORMATTERS
    from log_server.core.pipeline import LogPipeline
    from log_server.core.sequencer import Sequencer
    from log_server.events import ServerEvents
    from log_server.health import Health
    from log_server.protocol.grpc_web import Policy
    from log_server.protocol.proto_codec import batch_decoder
    from log_server.sources.grpc import GrpcSource

    async def run() -> int:
        pipeline = LogPipeline(Sequencer(0), FORMATTERS["text"], 1 << 20)
        events = ServerEvents("test", pipeline)
        policy = Policy(("http://localhost:*",), ("localhost",))
        source = GrpcSource(pipeline, events, Health(), batch_decoder(False, "text"), web=policy)
        assert source.front is not None
        source.front.native_relay = None
        listener = await source.start()
        port = int(listener.rsplit(":", 1)[1])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LogServiceStub(channel)
            assert (await stub.LogMessage(pb.LogRequest(message="one"), timeout=10)).success
            batch = pb.LogBatchRequest(requests=[pb.LogRequest(message="b")] * 100)
            assert (await stub.LogBatch(batch, timeout=10)).success
            requests = (pb.LogRequest(message=f"s{i}") for i in range(50))
            assert (await stub.StreamLogs(requests, timeout=10)).success
        source.stop_accepting()
        await source.drain()
        return pipeline.received

    assert asyncio.run(run()) == 151


def test_a_refusal_that_closes_still_reaches_a_client_sending_a_big_body(
    server: RunningServer,
) -> None:
    """Closing with unread input resets the connection and can destroy the answer; the
    server reads and drops the rest first (lingering close)."""
    assert server.grpc_port is not None
    body = b"\x00" * (3 * 1024 * 1024)
    head = (
        f"POST {LOG_BATCH} HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\n"
        f"Content-Type: application/grpc-web\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server.grpc_port, head + body)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:100]


def _private_dir(parent: Path, name: str) -> Path:
    directory = parent / (PRIVATE_DIR_PREFIX + name)
    directory.mkdir(mode=0o700)
    return directory


def test_private_dirs_of_killed_servers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = _private_dir(tmp_path, "dead")
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(dead / "grpc.sock"))  # bound, then closed: what SIGKILL leaves
    live = _private_dir(tmp_path, "live")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(live / "grpc.sock"))
    listening.listen()
    unbound_old = _private_dir(tmp_path, "unbound-old")
    os.utime(unbound_old, (time.time() - 3600, time.time() - 3600))
    starting = _private_dir(tmp_path, "starting")  # a server between mkdtemp and bind
    other = tmp_path / "log_server-grpc.txt"
    other.write_text("not a directory")
    try:
        remove_stale_private_dirs(tmp_path)
    finally:
        listening.close()
    assert not dead.exists() and not unbound_old.exists()
    assert live.exists() and starting.exists() and other.exists()


def test_a_server_killed_with_sigkill_leaves_a_private_dir_that_the_next_start_removes(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    before = set(Path(tempfile.gettempdir()).glob(PRIVATE_DIR_PREFIX + "*"))
    first = server_factory(log_dir=tmp_path / "first")
    (left,) = set(Path(tempfile.gettempdir()).glob(PRIVATE_DIR_PREFIX + "*")) - before
    first.process.kill()
    first.process.wait()
    assert left.exists()
    second = server_factory(log_dir=tmp_path / "second")
    assert not left.exists()
    assert second.stop() == 0
