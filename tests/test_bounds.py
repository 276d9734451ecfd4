"""Bounds on memory, CPU and descriptors that a client cannot push the server past (issue 14,
items 7-11, 16, 18): each test provokes the bound against the real server."""

from __future__ import annotations

import http.client
import re
import resource
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from support import RunningServer, msg_frame, numbered_frames, rss_mb

from log_server.generated import log_service_pb2 as pb
from log_server.generated import log_service_pb2_grpc as pb_grpc


@contextmanager
def stalled_disk(server: RunningServer) -> Iterator[None]:
    """Every write to the log fails (EFBIG) until the block ends: the server's file size
    limit is set to what it has written (Python ignores SIGXFSZ, so writes just fail)."""
    pid = server.process.pid
    size = server.active_log.stat().st_size
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
    try:
        yield
    finally:
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))


def queued_lines(server: RunningServer) -> int:
    match = re.search(r"queued=(\d+)", server.health())
    assert match is not None
    return int(match.group(1))


class Flood(threading.Thread):
    """Sends `data` on one connection; held back by TCP flow control when intake pauses."""

    def __init__(self, server: RunningServer, data: bytes) -> None:
        super().__init__(daemon=True)
        self.server, self.data = server, data
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            address = ("127.0.0.1", self.server.tcp_port)
            with socket.create_connection(address, timeout=120) as sock:
                sock.sendall(self.data)
        except BaseException as exc:
            self.errors.append(exc)


def test_a_connection_opened_while_intake_is_paused_is_held_back(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 7: before the fix one new connection pushed ~165 MB past a 1 MB queue bound
    (uvloop ignored the pause asked for in connection_made)."""
    server = server_factory("--tcp_only", "--max_queue_bytes", "1MB")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    late_count = 400_000
    with stalled_disk(server):
        first = Flood(server, numbered_frames("first", 100_000))
        first.start()
        for _ in range(100):  # until intake has paused: the queue stops growing
            before = queued_lines(server)
            time.sleep(0.1)
            if before and queued_lines(server) == before:
                break
        baseline = rss_mb(server.process.pid)
        late = Flood(server, numbered_frames("late", late_count))
        late.start()
        peak = baseline
        for _ in range(20):
            time.sleep(0.1)
            peak = max(peak, rss_mb(server.process.pid))
        assert late.is_alive(), "the new connection must be held back by TCP flow control"
        queued = queued_lines(server)  # health is answered while intake is paused
        assert queued < late_count / 4, f"intake did not stop: {queued} lines queued"
        assert peak - baseline < 20, f"RSS grew by {peak - baseline:.0f} MB over {baseline:.0f}"
    first.join(timeout=120)
    late.join(timeout=120)
    assert not first.errors and not late.errors, (first.errors, late.errors)
    lines = server.wait_for_text("late    n=", late_count, timeout_s=120)
    got = [int(m.group(1)) for ln in lines if (m := re.search(r"late    n=(\d{7}) ", ln))]
    assert got == list(range(late_count)), "every message written once, in order"


def raw_call(server: RunningServer, method: str) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return channel, channel.unary_unary(f"/logservice.LogService/{method}")


def test_a_log_batch_past_grpc_max_batch_is_refused_before_decoding(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 8: 4 MB of 2-byte entries became 2 million lines (1.5-2 GB RSS, the loop blocked
    for seconds); 10,001 entries were accepted before the fix."""
    server = server_factory()
    channel, log_batch = raw_call(server, "LogBatch")
    with channel:
        baseline = rss_mb(server.process.pid)
        for entries in (10_001, 2_000_000):
            with pytest.raises(grpc.RpcError) as info:
                log_batch(b"\x0a\x00" * entries, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "more than 10000 messages" in (info.value.details() or "")
            assert "--grpc_max_batch" in (info.value.details() or "")
        assert rss_mb(server.process.pid) - baseline < 50
        assert "grpc_request_failed" in server.wait_for_line("more than 10000 messages")
        assert log_batch(b"\x0a\x00" * 10_000, timeout=30) == b"\x08\x01"
        server.wait_for(lambda ls: len(ls) >= 10_000)


def test_a_request_past_grpc_max_request_size_gets_resource_exhausted(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory("--grpc_max_request_size", "64KB")
    channel, log_message = raw_call(server, "LogMessage")
    with channel:
        big = pb.LogRequest(message="x" * 70_000).SerializeToString()
        with pytest.raises(grpc.RpcError) as info:
            log_message(big, timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        small = pb.LogRequest(message="y" * 60_000).SerializeToString()
        assert log_message(small, timeout=30) == b"\x08\x01"
    server.wait_for_text("yyyyyyyy")


def test_a_large_batch_is_written_whole_and_in_order(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    batch = pb.LogBatchRequest(
        requests=[pb.LogRequest(message=f"piece n={i:05d}") for i in range(10_000)]
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        assert pb_grpc.LogServiceStub(channel).LogBatch(batch, timeout=30).success
    lines = server.wait_for_text("piece n=", 10_000)
    got = [int(m.group(1)) for ln in lines if (m := re.search(r"piece n=(\d{5})", ln))]
    assert got == list(range(10_000))


def durable_call(server: RunningServer, channel: grpc.Channel, text: str) -> Any:
    """A LogMessage answered only once its line is on disk: held while writes fail."""
    stub = pb_grpc.LogServiceStub(channel)
    return stub.LogMessage.future(
        pb.LogRequest(message=text), metadata=(("log-ack", "durable"),), timeout=60
    )


def received(server: RunningServer) -> int:
    match = re.search(r"received=(\d+)", server.health())
    assert match is not None
    return int(match.group(1))


def test_grpc_calls_past_grpc_max_calls_get_resource_exhausted(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 9: there was no limit on calls in progress (10,000 idle streams were held)."""
    server = server_factory("--grpc_max_calls", "4")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        with stalled_disk(server):
            start = received(server)
            held = [durable_call(server, channel, f"held {n}") for n in range(4)]
            for _ in range(200):  # until all four are in progress, waiting for the disk
                if received(server) >= start + 4:
                    break
                time.sleep(0.05)
            # On the same connection the client would queue it (the connection's stream
            # limit is --grpc_max_calls too); another connection gets the server's answer.
            other = grpc.insecure_channel(
                f"127.0.0.1:{server.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            with other, pytest.raises(grpc.RpcError) as info:
                durable_call(server, other, "one too many").result()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert not any(call.done() for call in held)
        assert all(call.result().success for call in held)
    server.wait_for_text("held ", 4)
    assert not any("one too many" in line for line in server.lines())


def test_grpc_connections_past_max_connections_are_closed(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 9: gRPC connections were not limited at all."""
    server = server_factory("--max_connections", "2")
    target = f"127.0.0.1:{server.grpc_port}"
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(target, options=own_connection) for _ in range(3)]
    try:
        for n, channel in enumerate(channels[:2]):
            stub = pb_grpc.LogServiceStub(channel)
            assert stub.LogMessage(pb.LogRequest(message=f"connection {n}"), timeout=10).success
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.LogServiceStub(channels[2]).LogMessage(
                pb.LogRequest(message="third connection"), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (
            pb_grpc.LogServiceStub(channels[0])
            .LogMessage(pb.LogRequest(message="first goes on"), timeout=10)
            .success
        )
    finally:
        for channel in channels:
            channel.close()
    server.wait_for_text("first goes on")
    assert not any("third connection" in line for line in server.lines())


def test_grpc_callers_past_the_waiting_budget_are_told_unavailable_at_once(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 9: every caller waiting for room kept its request in memory for up to 10 s
    (here 100 x 1 MB against a 1 MB queue); now those waiting hold at most
    --max_queue_bytes between them and the others are told UNAVAILABLE at once."""
    server = server_factory("--max_queue_bytes", "1MB")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    request = pb.LogBatchRequest(
        requests=[pb.LogRequest(message="w" * 1000) for _ in range(1000)]
    ).SerializeToString()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    log_batch = channel.unary_unary("/logservice.LogService/LogBatch")
    with channel:
        with stalled_disk(server):
            flood = Flood(server, numbered_frames("fill", 100_000))
            flood.start()
            for _ in range(100):  # until intake has paused: the queue stops growing
                before = queued_lines(server)
                time.sleep(0.1)
                if before and queued_lines(server) == before:
                    break
            calls = [log_batch.future(request, timeout=60) for _ in range(100)]
            for _ in range(600):  # until all but one have their answer
                if sum(call.done() for call in calls) >= 99:
                    break
                time.sleep(0.05)
            waiting = [call for call in calls if not call.done()]
            assert len(waiting) == 1, "one request fits the budget and waits for room"
            refused = [call for call in calls if call.done()]
            assert all(call.code() == grpc.StatusCode.UNAVAILABLE for call in refused)
            assert all("calls are waiting for room" in (call.details() or "") for call in refused)
        assert waiting[0].result(timeout=60) == b"\x08\x01"
    flood.join(timeout=120)
    assert not flood.errors


def test_idle_streams_past_grpc_max_calls_are_not_let_in(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 9: one connection held 10,000 idle streams. Now calls in progress are at most
    --grpc_max_calls, and so are one connection's HTTP/2 streams: the client holds the
    rest back itself (SETTINGS_MAX_CONCURRENT_STREAMS) until streams end."""
    server = server_factory("--grpc_max_calls", "100")
    release = threading.Event()

    def one_message_then_idle(n: int) -> Iterator[pb.LogRequest]:
        yield pb.LogRequest(message=f"stream {n:03d}")
        release.wait(60)

    def streams_in(lines: list[str]) -> int:
        return sum("stream " in line for line in lines)

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.LogServiceStub(channel)
        # The connection's first call brings the server's HTTP/2 settings: streams opened
        # before the client has them would be refused rather than queued.
        assert stub.LogMessage(pb.LogRequest(message="settings known"), timeout=10).success
        calls = [stub.StreamLogs.future(one_message_then_idle(n), timeout=60) for n in range(150)]
        try:
            server.wait_for(lambda lines: streams_in(lines) >= 100)
            time.sleep(1.0)  # time for more streams to arrive, if the server let them in
            assert streams_in(server.lines()) == 100
        finally:
            release.set()
        outcomes = []
        for call in calls:
            try:
                outcomes.append(grpc.StatusCode.OK if call.result().success else None)
            except grpc.RpcError as exc:
                outcomes.append(exc.code())
    # At the limit grpc-core refuses some of the queued streams as they start (it counts
    # an ending stream a little longer than the client): UNAVAILABLE, which clients retry.
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, outcomes
    assert outcomes.count(grpc.StatusCode.OK) >= 100


def grpc_web_call(server: RunningServer, path: str, message: bytes) -> http.client.HTTPResponse:
    assert server.grpc_port is not None
    connection = http.client.HTTPConnection("localhost", server.grpc_port, timeout=30)
    headers = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
    connection.request("POST", path, struct.pack(">BI", 0, len(message)) + message, headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_grpc_web_has_the_same_batch_and_size_bounds(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 8 on the gRPC-Web path: 10,001 empty entries were accepted (2 million in 4 MB
    would have been too), and its size limit was 4 MB whatever --grpc_max_request_size."""
    server = server_factory("--grpc_max_request_size", "64KB")
    response = grpc_web_call(server, "/logservice.LogService/LogBatch", b"\x0a\x00" * 10_001)
    assert response.getheader("grpc-status") == "3"
    assert "--grpc_max_batch" in response.getheader("grpc-message", "")
    big = pb.LogRequest(message="x" * 70_000).SerializeToString()
    response = grpc_web_call(server, "/logservice.LogService/LogMessage", big)
    assert response.getheader("grpc-status") == "8"
    response = grpc_web_call(server, "/logservice.LogService/LogBatch", b"\x0a\x00" * 10_000)
    assert response.status == 200 and response.getheader("grpc-status") is None
    server.wait_for(lambda lines: len(lines) >= 10_000)


def test_grpc_web_callers_past_the_waiting_budget_are_told_unavailable_at_once(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 9 on the gRPC-Web path: each connection's call waited for room holding its
    request, and all were let in at once when room came. Now they share native gRPC's
    admission (LogServiceHandler.wait_for_room)."""
    server = server_factory("--max_queue_bytes", "1MB")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    request = pb.LogBatchRequest(
        requests=[pb.LogRequest(message="w" * 1000) for _ in range(1000)]
    ).SerializeToString()
    answers: list[http.client.HTTPResponse] = []

    def web_call() -> None:
        answers.append(grpc_web_call(server, "/logservice.LogService/LogBatch", request))

    with stalled_disk(server):
        flood = Flood(server, numbered_frames("fill", 100_000))
        flood.start()
        for _ in range(100):  # until intake has paused: the queue stops growing
            before = queued_lines(server)
            time.sleep(0.1)
            if before and queued_lines(server) == before:
                break
        callers = [threading.Thread(target=web_call, daemon=True) for _ in range(20)]
        for caller in callers:
            caller.start()
        for _ in range(600):  # until all but one have their answer
            if len(answers) >= 19:
                break
            time.sleep(0.05)
        assert len(answers) == 19 and sum(c.is_alive() for c in callers) == 1
        assert all(a.getheader("grpc-status") == "14" for a in answers)
        assert all("calls are waiting for room" in a.getheader("grpc-message", "") for a in answers)
    for caller in callers:
        caller.join(timeout=60)
    assert len(answers) == 20 and answers[-1].getheader("grpc-status") is None
    flood.join(timeout=120)
    assert not flood.errors
