"""The TCP listener against the real server process, over real sockets."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time

import pytest
from log_server_client import LogClient
from support import RunningServer, frame, hello_payload, msg_frame, seq_of

from log_server.sources.tcp import RefusalLog


def message_lines(lines: list[str], marker: str) -> list[str]:
    return [line for line in lines if marker in line]


def test_one_packed_message_lands_with_its_fields(server: RunningServer) -> None:
    server.send(
        msg_frame(
            True,
            timestamp="2026-11-27T10:00:00.000001+00:00",
            hostname="web1",
            loggerName="shop",
            level="warning",
            filename="cart.py",
            functionName="checkout",
            lineNumber="88",
            message="card declined",
            processId="4242",
            serviceName="shop-api",
        )
    )
    line = server.wait_for_line("card declined")
    assert re.search(
        r"^\s*\d+ 2026-11-27T10:00:00\.000001\+00:00\s+web1\s+shop\s+WARNING\s+cart\.py\s+"
        r"checkout\s+88 card declined pid=4242 service=shop-api$",
        line,
    ), line


def test_packed_and_unpacked_from_many_connections_keep_order(server: RunningServer) -> None:
    connections, per_connection = 4, 500

    def client(c: int) -> None:
        data = b"".join(
            msg_frame(i % 2 == 0, message=f"conn{c}-{i}", level="info")
            + (frame(b"") if i % 50 == 0 else b"")  # keep-alives in between
            for i in range(per_connection)
        )
        with server.connect() as sock:
            for start in range(0, len(data), 997):  # odd-sized writes split frames
                sock.sendall(data[start : start + 997])

    threads = [threading.Thread(target=client, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ours = re.compile(r" conn\d+-\d+$")
    lines = server.wait_for(
        lambda ls: sum(bool(ours.search(ln)) for ln in ls) == connections * per_connection
    )
    seqs = [seq_of(line) for line in lines]
    assert seqs == sorted(set(seqs)), "global sequence strictly increasing in the file"
    for c in range(connections):
        got = [re.search(rf"conn{c}-(\d+)$", line) for line in lines]
        indices = [int(m.group(1)) for m in got if m]
        assert indices == list(range(per_connection)), f"connection {c} out of order or lost"


def test_health_answers_one_status_line_and_closes(server: RunningServer) -> None:
    server.send(msg_frame(message="before health"))
    server.wait_for_text("before health")
    status = server.health()
    assert status.endswith("\n") and status.count("\n") == 1
    assert re.fullmatch(
        r"OK LogServer uptime=\d+s received=\d+ written=\d+ queued=\d+ connections=\d+\n", status
    )
    assert int(re.search(r"received=(\d+)", status).group(1)) >= 2  # type: ignore[union-attr]


def test_health_answers_without_waiting_for_end_of_input(server: RunningServer) -> None:
    """As `nc` does: send the word and keep our side open."""
    with server.connect() as sock:
        sock.sendall(b"health\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"OK LogServer ")


def test_garbage_closes_only_that_connection(server: RunningServer) -> None:
    with server.connect() as good:
        good.sendall(msg_frame(message="good-1"))
        with server.connect() as bad:
            bad.sendall(frame(b"this is not capn proto at all!!!"))
            bad.settimeout(5)
            assert bad.recv(100) == b"", "the bad connection is closed by the server"
        good.sendall(msg_frame(message="good-2"))
        server.wait_for_text("good-2")
    lines = server.wait_for_text("frame_rejected")
    rejected = [line for line in lines if "frame_rejected" in line]
    assert re.search(
        r"ERROR .* closing connection from 127\.0\.0\.1:\d+: invalid Cap'n Proto", rejected[0]
    ), rejected[0]
    assert server.health().startswith("OK ")


def test_oversized_frame_closes_with_the_reason(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--max_frame_size", "1KB")
    with server.connect() as sock:
        sock.sendall(msg_frame(message="fits"))
        sock.sendall(struct.pack(">I", 5000) + b"x" * 5000)
        sock.settimeout(5)
        assert sock.recv(100) == b""
    lines = server.wait_for_text("exceeds the limit")
    assert any("frame of 5000 bytes exceeds the limit of 1024 bytes" in ln for ln in lines)
    assert message_lines(lines, " fits")


def test_good_frames_before_a_bad_one_in_the_same_read_are_kept(server: RunningServer) -> None:
    server.send(msg_frame(message="kept-1") + msg_frame(message="kept-2") + frame(b"\xff" * 16))
    lines = server.wait_for_text("frame_rejected")
    assert message_lines(lines, "kept-1") and message_lines(lines, "kept-2")


def test_hostile_fields_are_escaped_onto_one_line(server: RunningServer) -> None:
    server.send(
        msg_frame(
            message="evil\n         9 2026 forged line\x1b[31m red",
            hostname="h\r\nx",
            stackTrace="Traceback:\n  boom",
        )
    )
    line = server.wait_for_line("evil")
    assert "evil\\n         9 2026 forged line\\x1b[31m red" in line
    assert 'stack="Traceback:\\n  boom"' in line
    assert not any("forged line" in ln and "evil" not in ln for ln in server.lines())


def test_connection_lines_name_peer_and_counts(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(msg_frame(message="a") + msg_frame(message="b"))
        port = sock.getsockname()[1]
    lines = server.wait_for_text(f"127.0.0.1:{port} closed")
    assert any(
        f"connection from 127.0.0.1:{port}" in ln and "connection_opened" in ln for ln in lines
    )
    closed = next(ln for ln in lines if f"127.0.0.1:{port} closed" in ln)
    assert "messages=2" in closed


def test_ipv6_loopback(server_factory) -> None:  # type: ignore[no-untyped-def]
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        import pytest

        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)")
    server = server_factory("--host", "::1")
    with socket.create_connection(("::1", server.tcp_port), timeout=10) as sock:
        sock.sendall(msg_frame(message="over ipv6"))
    server.wait_for_text("over ipv6")


def test_connections_past_the_limit_are_refused(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--max_connections", "2")
    first, second = server.connect(), server.connect()
    try:
        first.sendall(msg_frame(message="first in"))
        second.sendall(msg_frame(message="second in"))
        server.wait_for_text("second in")
        server.wait_for_text("first in")
        with server.connect() as third:
            third.settimeout(5)
            try:
                assert third.recv(10) == b""
            except ConnectionResetError:
                pass
        line = server.wait_for_line("refusing connection")
        assert "2 connections open (--max_connections)" in line
        first.sendall(msg_frame(message="first still works"))
        server.wait_for_text("first still works")
    finally:
        first.close()
        second.close()


def test_a_connection_stalled_mid_frame_is_closed_but_idle_ones_are_not(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--read_timeout", "0.5")
    idle = server.connect()
    stalled = server.connect()
    try:
        idle.sendall(msg_frame(message="before idling"))
        data = msg_frame(message="never finished")
        stalled.sendall(data[:-3])
        stalled.settimeout(10)
        assert stalled.recv(10) == b"", "the stalled connection is closed by the server"
        line = server.wait_for_line("stalled for")
        assert "in the middle of a frame" in line and "--read_timeout" in line
        time.sleep(1.0)  # idle (between frames) for twice the timeout
        idle.sendall(msg_frame(message="after idling"))
        server.wait_for_text("after idling")
        assert not any("never finished" in ln for ln in server.lines())
    finally:
        idle.close()
        stalled.close()


def test_unix_socket_with_mode_0660(server_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "log.sock"
    server = server_factory("--unix_socket", str(path), "--tcp_only")
    assert path.is_socket()
    assert path.stat().st_mode & 0o777 == 0o660
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(msg_frame(message="over a unix socket"))
    server.wait_for_text("over a unix socket")
    line = server.wait_for_line("connection from unix:")
    assert str(path) in line
    assert server.stop() == 0
    assert not path.exists(), "the socket file is removed at shutdown"


def test_the_pycapnp_fallback_serves_the_same_protocol(server_factory) -> None:  # type: ignore[no-untyped-def]
    """--decoder python: what runs where the compiled decoder is not installed."""
    server = server_factory("--decoder", "python", "--tcp_only")
    assert "decoder=python" in server.wait_for_line("listening on")
    server.send(
        msg_frame(True, message="packed via pycapnp")
        + frame(b"")
        + msg_frame(False, message="unpacked via pycapnp")
    )
    server.wait_for_text("unpacked via pycapnp")
    assert server.health().startswith("OK ")
    server.send(frame(b"not capnp at all"))
    server.wait_for_text("frame_rejected")
    lines = server.lines()
    assert lines.index(next(ln for ln in lines if "packed via pycapnp" in ln)) < lines.index(
        next(ln for ln in lines if "unpacked via pycapnp" in ln)
    )


def test_opened_line_comes_before_the_connections_first_message(server: RunningServer) -> None:
    """Regression: the "opened" line used to get a later number than the first message."""
    with server.connect() as sock:
        sock.sendall(msg_frame(message="first words"))
        port = sock.getsockname()[1]
    lines = server.wait_for_text(f"127.0.0.1:{port} closed")
    opened = next(i for i, ln in enumerate(lines) if f"connection from 127.0.0.1:{port}" in ln)
    first = next(i for i, ln in enumerate(lines) if "first words" in ln)
    assert opened < first


def test_refusal_lines_are_rate_limited_with_a_count_of_the_rest() -> None:
    log = RefusalLog(interval_s=5)
    assert log.refused(100.0), "the first refusal is logged"
    assert not any(log.refused(100.0 + i / 10) for i in range(1, 40))
    assert log.window_over(105.0) == 39
    assert not log.refused(106.0), "a flood that goes on is counted in the next interval"
    assert log.window_over(110.0) == 1
    assert log.window_over(115.0) == 0
    assert log.refused(200.0), "after a quiet interval the next refusal is logged at once"


def test_past_the_limit_refusals_are_one_line_and_health_is_still_answered(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 item 16: every refused connection wrote a line to the log and to stderr,
    and `health` itself was refused while the server was full."""
    server = server_factory("--tcp_only", "--max_connections", "2")
    held = [server.connect(), server.connect()]
    try:
        for sock in held:
            sock.sendall(msg_frame(message="holding a slot"))
        server.wait_for_text("holding a slot", 2)
        assert server.health().startswith("OK "), "health is answered at --max_connections"
        for _ in range(30):
            with server.connect() as extra:
                extra.settimeout(10)
                extra.sendall(msg_frame(message="one too many"))
                try:
                    assert extra.recv(10) == b""
                except ConnectionResetError:
                    pass
        lines = server.wait_for_text("refused 29 more connections in the last 5s", timeout_s=20)
        assert sum("refusing connection from" in ln for ln in lines) == 1
        assert not any("one too many" in ln for ln in lines)
        assert server.stderr().count("connection_refused") == 2, server.stderr()
        held[0].sendall(msg_frame(message="still served"))
        server.wait_for_text("still served")
    finally:
        for sock in held:
            sock.close()


HELLO_5 = ["svc-a", "host-a", "10.0.0.9:5555", "127.0.0.1:4020", ""]


@pytest.mark.parametrize("decoder", ["native", "python"])
@pytest.mark.parametrize("texts", [HELLO_5, HELLO_5[:4]], ids=["5-pointer", "4-pointer"])
def test_a_hello_is_not_written_and_names_the_connection(server_factory, decoder, texts) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: the original clients' first frame, with keep-alives around it."""
    server = server_factory("--decoder", decoder, "--tcp_only")
    with server.connect() as sock:
        sock.sendall(frame(b"") + frame(hello_payload(texts)) + frame(b""))
        sock.sendall(
            msg_frame(message="after hello 1", level="info")
            + frame(b"")
            + msg_frame(message="after hello 2", level="info")
        )
        port = sock.getsockname()[1]
    closed = server.wait_for_line(f"127.0.0.1:{port}, fromAddress 10.0.0.9:5555) closed")
    assert "messages=2" in closed
    lines = server.lines()
    opened = next(ln for ln in lines if "connection_opened" in ln and "svc-a@host-a" in ln)
    assert f"connection from svc-a@host-a (127.0.0.1:{port}, fromAddress 10.0.0.9:5555)" in opened
    assert not [ln for ln in lines if "NOTSET" in ln or "svc-a" in ln.split(" ", 2)[1]]
    messages = [ln for ln in lines if "after hello" in ln]
    assert len(messages) == 2 and messages[0].endswith("after hello 1")


def test_only_the_first_frame_can_be_a_hello(server: RunningServer) -> None:
    """Later, a frame of that shape is what any Cap'n Proto reader takes it for: a LoggerMsg
    from an older schema (absent data words read as defaults), decoded as usual
    (docs/protocol.md, "The original clients' dialect")."""
    with server.connect() as sock:
        sock.sendall(msg_frame(message="first", level="info") + frame(hello_payload(HELLO_5)))
        sock.sendall(msg_frame(message="third", level="info"))
        port = sock.getsockname()[1]
    closed = server.wait_for_line(f"connection from 127.0.0.1:{port} closed")
    assert "messages=3" in closed
    lines = server.lines()
    assert not any("frame_rejected" in ln for ln in lines)
    assert any(" svc-a " in ln and "NOTSET" in ln for ln in lines)


def test_a_malformed_hello_closes_the_connection_with_the_reason(server: RunningServer) -> None:
    payload = bytearray(hello_payload(HELLO_5))
    payload[16:24] = struct.pack("<Q", 1 | (500 << 2) | (2 << 32) | (4 << 35))
    with server.connect() as sock:
        sock.sendall(frame(bytes(payload)) + msg_frame(message="never read"))
        sock.settimeout(5)
        assert sock.recv(100) == b""
    line = server.wait_for_line("malformed HelloMsg")
    assert "text at pointer 1 is out of bounds or unterminated" in line
    assert not any("never read" in ln for ln in server.lines())


def test_a_connection_closed_in_the_middle_of_a_frame_says_how_much_was_lost(
    server: RunningServer,
) -> None:
    cut = msg_frame(message="cut off")
    with server.connect() as sock:
        sock.sendall(msg_frame(message="whole") + cut[:-5])
        port = sock.getsockname()[1]
    line = server.wait_for_line("in the middle of a frame")
    assert f"connection from 127.0.0.1:{port} closed in the middle of a frame: " in line
    assert f"{len(cut) - 5} bytes of it lost" in line
    assert "WARNING" in line
    closed = server.wait_for_line(f"127.0.0.1:{port} closed:")
    assert "messages=1" in closed
    assert not any("cut off" in ln for ln in server.lines())


def test_a_clean_close_between_frames_has_no_truncation_line(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(msg_frame(message="clean") + frame(b""))
        port = sock.getsockname()[1]
    server.wait_for_text(f"127.0.0.1:{port} closed:")
    assert not any("in the middle of a frame" in ln for ln in server.lines())


def test_the_python_client_with_hello_and_ack_is_acknowledged(server: RunningServer) -> None:
    """hello=True and ack=True together: HelloMsg, then the ACK opening, then frames."""
    client = LogClient("127.0.0.1", server.tcp_port, service_name="both", ack=True, hello=True)
    for i in range(20):
        client.log("INFO", f"hello and ack {i}")
    assert client.close(timeout_s=15), client.last_error
    lines = server.wait_for_text("hello and ack 19")
    assert sum("hello and ack" in ln for ln in lines) == 20
    assert any("connection_opened" in ln and "connection from both@" in ln for ln in lines)
    assert not any("NOTSET" in ln for ln in lines)
