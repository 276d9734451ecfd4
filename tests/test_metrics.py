"""/metrics (--metrics_port) against the real server: real clients send known numbers of
messages over TCP, the Unix socket, gRPC, gRPC-Web and OTLP; the scrapes, parsed with
prometheus_client's own parser, agree with what was sent and with what is on disk."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from log_server_client import GrpcLogClient, LogClient
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb
from opentelemetry.proto.logs.v1 import logs_pb2
from support import RunningServer, Samples, frame, msg_frame, numbered_frames, scrape, start_server

from log_server import __version__
from log_server.generated import log_service_pb2 as pb
from log_server.generated import log_service_pb2_grpc as pb_grpc


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def wait_for_scrape(
    server: RunningServer, predicate: Callable[[Samples], bool], timeout_s: float = 15.0
) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(server)
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for /metrics: {samples}")
        time.sleep(0.05)


def quiet(samples: Samples) -> bool:
    """Nothing queued and no connection open: the figures stand still."""
    return value(samples, "log_server_queue_lines") == 0 and all(
        v == 0 for (name, _), v in samples.items() if name == "log_server_connections"
    )


def received(samples: Samples, source: str) -> float:
    return value(samples, "log_server_messages_received_total", source=source)


def written_bytes_on_disk(server: RunningServer) -> int:
    return sum(path.stat().st_size for path in server.log_files() if path.exists())


def otlp_export(port: int, bodies: list[str]) -> None:
    request = otlp_pb.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        log_records=[
                            logs_pb2.LogRecord(body={"string_value": body}) for body in bodies
                        ]
                    )
                ]
            )
        ]
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=otlp_pb.ExportLogsServiceRequest.SerializeToString,
            response_deserializer=otlp_pb.ExportLogsServiceResponse.FromString,
        )
        export(request, timeout=10)


def grpc_web_batch(port: int, messages: list[str]) -> None:
    batch = pb.LogBatchRequest(requests=[pb.LogRequest(message=m) for m in messages])
    body = batch.SerializeToString()
    connection = http.client.HTTPConnection("localhost", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/logservice.LogService/LogBatch",
            struct.pack(">BI", 0, len(body)) + body,
            {
                "Content-Type": "application/grpc-web+proto",
                "X-Grpc-Web": "1",
                "Origin": "http://localhost:5173",
            },
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    finally:
        connection.close()


def test_metrics_are_off_by_default(server: RunningServer) -> None:
    assert server.metrics_port is None


def test_scrapes_during_and_after_a_run_agree_with_what_was_sent_and_written(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    unix_path = tmp_path / "log.sock"
    server = server_factory("--metrics_port", "0", "--unix_socket", str(unix_path))
    assert server.grpc_port is not None
    tcp_clients, tcp_each, grpc_count, unix_count, web_count, otlp_count = 2, 3000, 4000, 500, 30, 7
    during: list[Samples] = []
    stop = threading.Event()

    def scraper() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            during.append(scrape(server))
            time.sleep(0.02)

    def tcp_sender(c: int) -> None:
        with LogClient("127.0.0.1", server.tcp_port) as client:
            for i in range(tcp_each):
                client.log("info", f"tcp-{c}-{i}")
            assert client.flush(30)

    def grpc_sender() -> None:
        with GrpcLogClient(f"127.0.0.1:{server.grpc_port}") as client:
            for i in range(grpc_count):
                client.log("warning", f"grpc-{i}")
            assert client.flush(30)

    def unix_sender() -> None:
        with LogClient(unix_socket=str(unix_path)) as client:
            for i in range(unix_count):
                client.log("info", f"unix-{i}")
            assert client.flush(30)

    watcher = threading.Thread(target=scraper)
    watcher.start()
    senders = [threading.Thread(target=tcp_sender, args=(c,)) for c in range(tcp_clients)]
    senders += [threading.Thread(target=grpc_sender), threading.Thread(target=unix_sender)]
    for thread in senders:
        thread.start()
    grpc_web_batch(server.grpc_port, [f"web-{i}" for i in range(web_count)])
    otlp_export(server.grpc_port, [f"otlp-{i}" for i in range(otlp_count)])
    for thread in senders:
        thread.join(60)
    after = wait_for_scrape(
        server, lambda s: received(s, "tcp") == tcp_clients * tcp_each and quiet(s)
    )
    stop.set()
    watcher.join(60)

    # During the run: counters never go back, nothing is written before it is received.
    assert during, "scraped while sending"
    for earlier, later in zip(during, during[1:], strict=False):
        for name in ("log_server_messages_written_total", "log_server_written_bytes_total"):
            assert value(later, name) >= value(earlier, name)
    for samples in during:
        total = sum(v for (n, _), v in samples.items() if n == "log_server_messages_received_total")
        assert value(samples, "log_server_messages_written_total") <= total
    assert any(
        0
        < value(s, "log_server_messages_written_total")
        < value(after, "log_server_messages_written_total")
        for s in during
    ), "some scrape landed in the middle of the run"

    # After it: each source's count is what its clients sent.
    assert received(after, "tcp") == tcp_clients * tcp_each
    assert received(after, "unix") == unix_count
    assert received(after, "grpc") == grpc_count
    assert received(after, "grpc-web") == web_count
    assert received(after, "otlp") == otlp_count
    for source in ("tcp", "unix", "grpc", "grpc-web", "otlp"):
        assert value(after, "log_server_requests_refused_total", source=source) == 0

    # ... and what is written is what is on disk: every line, every byte.
    lines = server.lines()
    assert value(after, "log_server_messages_written_total") == len(lines)
    assert value(after, "log_server_written_bytes_total") == written_bytes_on_disk(server)
    own_lines = [ln for ln in lines if " LogServer " in ln]
    assert received(after, "server") == len(own_lines)
    total = sum(v for (n, _), v in after.items() if n == "log_server_messages_received_total")
    assert total == len(lines)
    assert value(after, "log_server_queue_bytes") == 0
    assert value(after, "log_server_write_duration_seconds_count") >= 1
    assert value(after, "log_server_write_duration_seconds_sum") > 0
    assert value(after, "log_server_write_failures_total") == 0
    assert value(after, "log_server_rotations_total") == 0
    assert value(after, "log_server_healthy") == 1
    assert value(after, "log_server_events_total", event="connection_opened") == tcp_clients + 1


def test_build_info_and_openmetrics(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory("--metrics_port", "0", "--decoder", "python")
    samples = scrape(server)
    build = [labels for (name, labels), v in samples.items() if name == "log_server_build_info"]
    assert len(build) == 1 and dict(build[0])["version"] == __version__
    assert dict(build[0])["decoder"] == "python"
    assert value(samples, "log_server_queue_limit_bytes") == 64 * 1024 * 1024
    assert value(samples, "process_open_fds") > 0
    open_metrics = scrape(server, accept="application/openmetrics-text; version=1.0.0")
    assert value(open_metrics, "log_server_messages_written_total") >= 1


def test_refused_frames_calls_and_rotations_are_counted(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(
        "--metrics_port",
        "0",
        "--max_file_size",
        "4KB",
        "--max_files",
        "1000",
        "--grpc_max_batch",
        "10",
    )
    assert server.grpc_port is not None
    server.send(numbered_frames("rot", 300))
    with server.connect() as bad:
        bad.sendall(msg_frame(message="before-the-bad-one") + frame(b"not capn proto at all!!"))
        bad.settimeout(5)
        assert bad.recv(100) == b""
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.LogServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.LogBatch(
                pb.LogBatchRequest(requests=[pb.LogRequest(message="x")] * 11), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stub.LogBatch(pb.LogBatchRequest(requests=[pb.LogRequest(message="y")] * 10), timeout=10)
    samples = wait_for_scrape(server, lambda s: received(s, "tcp") == 301 and quiet(s))
    assert value(samples, "log_server_requests_refused_total", source="tcp") == 1
    assert value(samples, "log_server_requests_refused_total", source="grpc") == 1
    assert value(samples, "log_server_events_total", event="frame_rejected") == 1
    assert received(samples, "grpc") == 10
    rotated = list(server.log_dir.glob("_main.log.*"))
    assert len(rotated) > 5, "300 lines of about 200 bytes in files of 4 KB"
    assert value(samples, "log_server_rotations_total") == len(rotated)
    assert value(samples, "log_server_messages_written_total") == len(server.lines())
    assert value(samples, "log_server_written_bytes_total") == written_bytes_on_disk(server)


def test_connections_open_and_refused(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory("--metrics_port", "0", "--max_connections", "2")
    held = [server.connect() for _ in range(2)]
    for i, sock in enumerate(held):
        sock.sendall(msg_frame(message=f"held-{i}"))
    wait_for_scrape(server, lambda s: received(s, "tcp") == 2)
    # Past the limit: 8 are held a moment as possible health probes, then refused; the
    # ninth is refused at once (sources/tcp.py).
    extra = [server.connect() for _ in range(9)]
    samples = wait_for_scrape(
        server,
        lambda s: value(s, "log_server_connections_refused_total", listener="tcp") == 9,
    )
    assert value(samples, "log_server_connections", listener="tcp") == 2
    for sock in held + extra:
        sock.close()
    wait_for_scrape(server, lambda s: value(s, "log_server_connections", listener="tcp") == 0)


def test_the_endpoint_answers_only_metrics_and_survives_junk(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory("--metrics_port", "0")
    port = server.metrics_port
    assert port is not None
    for path, status in (("/", 404), ("/metrics/x", 404), ("/metrics?name[]=x", 200)):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", path)
        assert connection.getresponse().status == status, path
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/metrics", b"x")
    response = connection.getresponse()
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("HEAD", "/metrics")
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    connection.close()
    too_long = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000
    for junk, status in ((b"garbage\r\n\r\n", b"400"), (too_long, b"431")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(junk)
            answer = sock.recv(100)
            assert answer.startswith(b"HTTP/1.1 " + status), answer
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # opened and closed without a request
    assert value(scrape(server), "log_server_healthy") == 1
    assert server.health().startswith("OK ")


def test_a_busy_metrics_port_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match=f"cannot listen on metrics 127.0.0.1:{port}"):
            start_server(tmp_path / "logs", "--metrics_port", str(port))
