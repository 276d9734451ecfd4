"""The log directory and its files against another server and against planted links:
the real server process, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import RunningServer, msg_frame

from log_server.sinks.log_directory import LOCK_NAME, DirectoryInUse, DirectoryLock

Factory = Callable[..., RunningServer]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def run_second_server(log_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "log_server", "--log_dir", str(log_dir), "--port", "0"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=20)


def test_a_second_server_on_the_same_log_dir_exits_before_touching_it(
    server_factory: Factory, tmp_path: Path
) -> None:
    """Regression (issue 14, item 13): the second server ran too (both numbering from the
    same point), and its start-up "finished a rotation" in the live directory."""
    first = server_factory("--tcp_only")
    first.send(msg_frame(message="before the second server"))
    first.wait_for_text("before the second server")
    (first.log_dir / "_main.log.1").write_bytes(b"")  # a hole at .0 a start-up would fill
    before = snapshot(first.log_dir)
    second = run_second_server(first.log_dir, "--tcp_only")
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"log_server: error: log directory {first.log_dir} is in use by another log_server "
        f"(pid {first.process.pid}); stop it or choose another --log_dir"
    ]
    assert snapshot(first.log_dir) == before
    first.send(msg_frame(message="after the second server"))
    first.wait_for_text("after the second server")
    assert first.stop() == 0


def test_the_lock_is_released_with_the_process(server_factory: Factory) -> None:
    """A lock file left by a stopped (or killed) server does not block the next one."""
    first = server_factory("--tcp_only")
    first.process.kill()
    first.process.wait()
    assert (first.log_dir / LOCK_NAME).exists()
    second = server_factory("--tcp_only", log_dir=first.log_dir)
    assert (first.log_dir / LOCK_NAME).read_text() == f"{second.process.pid}\n"
    assert second.stop() == 0


def test_directory_lock_names_the_holder(tmp_path: Path) -> None:
    held = DirectoryLock(tmp_path / "logs")
    held.acquire()
    with pytest.raises(DirectoryInUse) as refused:
        DirectoryLock(tmp_path / "logs").acquire()
    assert refused.value.holder == str(os.getpid())
    held.release()
    again = DirectoryLock(tmp_path / "logs")
    again.acquire()
    again.release()
