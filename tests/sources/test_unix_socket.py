"""--unix_socket against another live server and a stale socket file: real servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from support import RunningServer, msg_frame

Factory = Callable[..., RunningServer]


def send_unix(path: Path, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)


def test_a_live_socket_is_not_taken_over_by_a_second_server(
    server_factory: Factory, tmp_path: Path
) -> None:
    """Regression (issue 14, item 14): the second server removed the live socket, served
    on it, and deleted it when it stopped; the first server was left unreachable."""
    path = tmp_path / "log.sock"
    first = server_factory("--unix_socket", str(path), "--tcp_only")
    argv = [sys.executable, "-m", "log_server", "--log_dir", str(tmp_path / "other")]
    second = subprocess.run(
        [*argv, "--port", "0", "--tcp_only", "--unix_socket", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"log_server: error: cannot listen on Unix socket {path}: Address already in use"
    ]
    send_unix(path, msg_frame(message="still the first server's"))
    first.wait_for_text("still the first server's")
    assert first.stop() == 0
    assert not path.exists()


def test_a_stale_socket_file_is_replaced(server_factory: Factory, tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # closed without unlinking: what kill -9 leaves
    server = server_factory("--unix_socket", str(path), "--tcp_only")
    send_unix(path, msg_frame(message="over the replaced socket"))
    server.wait_for_text("over the replaced socket")


def test_on_stop_only_the_socket_this_server_created_is_removed(
    server_factory: Factory, tmp_path: Path
) -> None:
    """Regression (issue 14, item 14): a server removed whatever socket was at its path
    when it stopped, also one another server had put there since."""
    path = tmp_path / "log.sock"
    server = server_factory("--unix_socket", str(path), "--tcp_only")
    path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as newcomer:
        newcomer.bind(str(path))
        newcomer.listen()
        assert server.stop() == 0
        assert path.is_socket()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))


def test_a_regular_file_at_the_socket_path_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("keep me")
    argv = [sys.executable, "-m", "log_server", "--log_dir", str(tmp_path / "logs")]
    result = subprocess.run(
        [*argv, "--port", "0", "--tcp_only", "--unix_socket", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1
    assert path.read_text() == "keep me"
