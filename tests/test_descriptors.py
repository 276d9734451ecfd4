"""Descriptors (issue 14 item 11): the server raises its open-file limit, keeps a reserve
for its own files, and lowers --max_connections to what fits, saying so."""

from __future__ import annotations

import resource
import socket
from pathlib import Path

from support import msg_frame, start_server

from log_server.descriptors import RESERVED_DESCRIPTORS, connection_budget

SOFT, HARD = 200, 300


def test_the_budget_keeps_the_reserve_and_shares_the_rest_between_listeners() -> None:
    assert connection_budget(1024, 1024, 2) == (1024 - RESERVED_DESCRIPTORS) // 2
    assert connection_budget(1024, 1024, 1) == 1024 - RESERVED_DESCRIPTORS
    assert connection_budget(10, 1 << 20, 2) == 10, "a flag that fits is kept"
    assert connection_budget(1024, 20, 2) == 1, "a tiny limit still serves one connection"


def low_open_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


def test_connections_at_the_limit_leave_descriptors_for_rotation(tmp_path: Path) -> None:
    """Before: with `ulimit -n` 200 and the default --max_connections 1024, clients holding
    ~190 connections left the server no descriptor to rotate with (and accept failed)."""
    server = start_server(
        tmp_path / "logs",
        "--tcp_only",
        "--max_file_size",
        "16KB",
        "--max_files",
        "50",
        preexec_fn=low_open_file_limit,
    )
    allowed = HARD - RESERVED_DESCRIPTORS
    held: list[socket.socket] = []
    try:
        for i in range(allowed):
            sock = server.connect()
            held.append(sock)
            sock.sendall(msg_frame(message=f"holder {i:03d}"))
        server.wait_for_text("holder ", allowed)
        with server.connect() as refused:
            refused.settimeout(10)
            try:
                assert refused.recv(10) == b"", "past the limit a connection is refused"
            except ConnectionResetError:
                pass
        for i in range(200):  # about 64 KB of lines: rotations at 16 KB
            held[0].sendall(msg_frame(message=f"rotating {i:03d} " + "r" * 150))
        lines = server.wait_for_text("rotating ", 200)
        tail = lines[next(n for n, ln in enumerate(lines) if "rotating 000" in ln) :]
        assert sum("rotated the active file" in ln for ln in tail) >= 2
        assert not any("write attempt" in ln for ln in lines), "no write or rotation failed"
        line = server.wait_for_line("lowered to")
        assert f"--max_connections 1024 lowered to {allowed} per listener" in line
        assert f"open-file limit is {HARD}" in line
    finally:
        for sock in held:
            sock.close()
        server.process.kill()
        server.process.wait()
