"""The log directory and its files against another server and against planted links:
the real server process, real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import RunningServer, msg_frame

from log_server.sinks.log_directory import LOCK_NAME, DirectoryInUse, DirectoryLock
from log_server.sinks.rotating_file import RotatingFileSink, SinkWriteError

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


def test_a_link_planted_as_the_active_file_is_refused_and_nothing_is_lost(
    server_factory: Factory, tmp_path: Path
) -> None:
    """Regression (issue 14, item 12): the server followed the link and appended client
    text to the file it pointed at. Now: refused, said once, DEGRADED, lines held until
    the link is gone, then written."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious\n")
    server = server_factory("--tcp_only")
    server.send(msg_frame(message="before the link"))
    server.wait_for_text("before the link")
    server.active_log.rename(server.log_dir / "_main.log.0")
    server.active_log.symlink_to(outside)
    for i in range(20):
        server.send(msg_frame(message=f"while linked {i}"))
    polls = 0
    while not server.health().startswith("DEGRADED"):
        polls += 1
        assert polls < 1000, "health never turned DEGRADED"
        time.sleep(0.02)
    assert "is a symbolic link; refusing to follow it" in server.health()
    assert outside.read_bytes() == b"precious\n"
    server.active_log.unlink()
    lines = server.wait_for_text("while linked 19")
    assert [f"while linked {i}" in " ".join(lines) for i in range(20)] == [True] * 20
    assert server.health().startswith("OK")
    assert outside.read_bytes() == b"precious\n"
    assert server.stop() == 0
    refusals = [ln for ln in server.stderr().splitlines() if "file_refused" in ln]
    assert len(refusals) == 1, server.stderr()


def test_a_log_dir_that_is_a_link_is_refused_at_start(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "logs").symlink_to(elsewhere, target_is_directory=True)
    result = run_second_server(tmp_path / "logs", "--tcp_only")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"log_server: error: cannot write to log directory {tmp_path / 'logs'}: "
        f"{tmp_path / 'logs'} is a symbolic link; refusing to follow it"
    ]
    assert list(elsewhere.iterdir()) == []


def test_a_log_dir_made_again_while_running_is_claimed_again(tmp_path: Path) -> None:
    """The lock lives in the directory: when it is removed and the writer makes it again,
    the lock is taken there too, and a server that got there first is not written over."""
    logs = tmp_path / "logs"
    lock = DirectoryLock(logs)
    lock.acquire()
    sink = RotatingFileSink(logs, max_file_bytes=1000, max_files=2, lock=lock)
    sink.open()
    sink.write(b"1 first\n")
    shutil.rmtree(logs)
    sink.write(b"2 in the new directory\n")
    assert (logs / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert (logs / "_main.log").read_bytes() == b"2 in the new directory\n"

    shutil.rmtree(logs)
    other = DirectoryLock(logs)
    other.acquire()  # another server claims the directory first
    with pytest.raises(SinkWriteError) as refused:
        sink.write(b"3 not into the other server's files\n")
    assert isinstance(refused.value.cause, DirectoryInUse)
    assert not (logs / "_main.log").exists()
    other.release()
    sink.write(b"3 once it has gone\n")
    assert (logs / "_main.log").read_bytes() == b"3 once it has gone\n"
    sink.close()
    lock.release()
