from __future__ import annotations

import contextlib
import os
from pathlib import Path

from log_server.stderr_echo import QUEUE_LINES, StderrEcho


def test_lines_go_out_in_order(tmp_path: Path) -> None:
    path = tmp_path / "err.txt"
    with open(path, "w") as stream:
        echo = StderrEcho(stream)
        for i in range(5):
            echo.write_line(f"line {i}")
        echo.close(5)
    assert path.read_text().splitlines() == [f"line {i}" for i in range(5)]


def test_a_failing_stream_drops_and_counts() -> None:
    stream = open("/dev/full", "w")  # noqa: SIM115
    echo = StderrEcho(stream)
    echo.write_line("lost")
    echo.close(5)
    assert echo.dropped == 1
    with contextlib.suppress(OSError):  # what the echo could not write is still buffered
        stream.close()


def test_a_stream_nobody_reads_never_blocks_the_caller() -> None:
    """The writes queue up behind a full pipe; the caller drops, it does not wait."""
    unread, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    echo = StderrEcho(stream)
    for _ in range(QUEUE_LINES * 3):
        echo.write_line("x" * 200)  # ~600 KB: the pipe holds 64 KiB
    echo.close(0.2)
    assert echo.dropped > 0
    os.close(unread)  # now the blocked write fails (EPIPE) and the thread drains the rest
    echo.close(5)
    with contextlib.suppress(OSError):
        stream.close()
