"""`log_server tail` against a real server writing real, rotating files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support import RunningServer, msg_frame, numbered_frames, seq_of

TAIL = [sys.executable, "-m", "log_server", "tail"]


def _tail(log_dir: Path, *args: str) -> list[str]:
    result = subprocess.run(
        [*TAIL, "--dir", str(log_dir), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_reads_the_rotated_set_in_order_with_filters(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory("--max_file_size", "4k", "--max_files", "50")
    server.send(numbered_frames("bulk", 200))
    server.send(msg_frame(message="disk almost full", level="warning", loggerName="disk"))
    server.wait_for_text("disk almost full")
    assert len(server.log_files()) > 2  # it did rotate
    everything = _tail(server.log_dir)
    seqs = [seq_of(line) for line in everything]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert sorted(seqs) == sorted(seq_of(line) for line in server.lines())
    assert sum("bulk" in line for line in everything) == 200
    warnings = _tail(server.log_dir, "--level", "warning", "--logger", "disk")
    assert [line for line in warnings if "disk almost full" in line] == warnings
    assert len(warnings) == 1
    assert len(_tail(server.log_dir, "--grep", r"n=000001[0-9] ")) == 10
    assert len(_tail(server.log_dir, "-n", "3")) == 3
    as_json = [json.loads(line) for line in _tail(server.log_dir, "--json", "--seq", "5..7")]
    assert [obj["seq"] for obj in as_json] == [5, 6, 7]


def test_follow_across_rotations_misses_and_repeats_nothing_and_stops_on_ctrl_c(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory("--max_file_size", "4k", "--max_files", "4")
    server.send(msg_frame(message="before the follower"))
    server.wait_for_text("before the follower")
    follower = subprocess.Popen(
        [*TAIL, "--dir", str(server.log_dir), "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert follower.stdout is not None
        os.set_blocking(follower.stdout.fileno(), False)
        buffer = b""

        def read_until(text: bytes) -> None:
            nonlocal buffer
            deadline = time.monotonic() + 30
            while text not in buffer and time.monotonic() < deadline:
                chunk = follower.stdout.read() if follower.stdout else b""
                if chunk:
                    buffer += chunk
                else:
                    time.sleep(0.02)
            assert text in buffer, f"the follower never printed {text!r}"

        read_until(b"before the follower")
        # Bounded: 40 batches of 30 lines, each more than one 4 KiB file, so the server
        # rotates while the follower reads; each batch is awaited, so none is rotated away.
        for batch in range(40):
            server.send(numbered_frames(f"f{batch:02d}", 30))
            read_until(f"f{batch:02d}     n=0000029".encode())
        follower.send_signal(signal.SIGINT)
        rest, err = follower.communicate(timeout=30)
        buffer += rest or b""
        assert follower.returncode == 0
        assert b"Traceback" not in err
        got = [seq_of(line) for line in buffer.decode().splitlines()]
        assert got == list(range(got[0], got[0] + len(got)))  # no line missing or repeated
        assert got[0] == 1
        assert len(got) >= 1201
        assert len(server.log_files()) == 5  # it rotated (the active file and .0-.3)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
