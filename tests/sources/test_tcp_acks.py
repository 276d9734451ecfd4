"""Acknowledged mode of the TCP protocol: a client that opens with ACK_HELLO is told, as
8-byte big-endian counts, how many of its messages are on disk (per --fsync)."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from support import RunningServer, msg_frame

from log_server.protocol.acknowledged import ACK_HELLO


def read_acks_until(sock: socket.socket, target: int, timeout_s: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    acks: list[int] = []
    buffer = b""
    while not acks or acks[-1] < target:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        assert chunk, "the server closed the acknowledged connection"
        buffer += chunk
        while len(buffer) >= 8:
            acks.append(struct.unpack(">Q", buffer[:8])[0])
            buffer = buffer[8:]
    return acks


@pytest.mark.parametrize(
    "fsync_args", [(), ("--fsync", "batch"), ("--fsync", "interval", "--fsync_interval", "0.2")]
)
def test_acks_count_this_connections_messages_on_disk(
    server_factory,
    fsync_args: tuple[str, ...],  # type: ignore[no-untyped-def]
) -> None:
    server: RunningServer = server_factory("--tcp_only", *fsync_args)
    other = server.connect()  # another client's messages interleave; they are not counted
    with server.connect() as sock:
        sock.sendall(ACK_HELLO)
        sock.settimeout(10)
        assert sock.recv(len(ACK_HELLO)) == ACK_HELLO
        for batch in range(10):
            sock.sendall(b"".join(msg_frame(message=f"acked {batch}-{i}") for i in range(100)))
            other.sendall(msg_frame(message=f"not acked {batch}"))
        acks = read_acks_until(sock, 1000)
    other.close()
    assert acks == sorted(set(acks)) and acks[-1] == 1000, acks
    lines = server.lines()
    assert sum(" acked " in ln and "not acked" not in ln for ln in lines) == 1000


def test_the_hello_may_arrive_in_pieces(server: RunningServer) -> None:
    with server.connect() as sock:
        for byte in ACK_HELLO:
            sock.sendall(bytes([byte]))
            time.sleep(0.01)
        sock.settimeout(10)
        assert sock.recv(len(ACK_HELLO)) == ACK_HELLO
        sock.sendall(msg_frame(message="after a slow hello"))
        assert read_acks_until(sock, 1) == [1]


def test_clients_without_the_hello_get_no_bytes_back(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(msg_frame(message="plain client"))
        server.wait_for_text("plain client")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)


@pytest.mark.parametrize("fsync_args", [(), ("--fsync", "batch")])
def test_a_client_that_half_closes_still_gets_its_final_acks(
    server_factory,
    fsync_args: tuple[str, ...],  # type: ignore[no-untyped-def]
) -> None:
    """Regression (issue 14, item 6): after shutdown(SHUT_WR) the server closed at once,
    before the acks for what was written, so the client had to resend everything."""
    server: RunningServer = server_factory("--tcp_only", *fsync_args)
    with server.connect() as sock:
        sock.sendall(ACK_HELLO)
        sock.settimeout(10)
        assert sock.recv(len(ACK_HELLO)) == ACK_HELLO
        sock.sendall(b"".join(msg_frame(message=f"half {i}") for i in range(500)))
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    acks = [struct.unpack(">Q", received[i : i + 8])[0] for i in range(0, len(received), 8)]
    assert acks and acks[-1] == 500, acks
