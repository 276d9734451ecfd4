"""BatchWriter on a real file whose writes are made to fail part-way."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
from pathlib import Path

import pytest

from log_server.core.format import FORMATTERS
from log_server.core.pipeline import LogPipeline
from log_server.core.records import LogRecord
from log_server.core.sequencer import Sequencer
from log_server.events import ServerEvents
from log_server.health import Health
from log_server.sinks import rotating_file
from log_server.sinks.retry import RetryPolicy
from log_server.sinks.rotating_file import CUT_MARK, RotatingFileSink
from log_server.sinks.writer import BatchWriter
from log_server.stderr_echo import StderrEcho

FAST_RETRY = RetryPolicy(initial_delay_s=0.001, max_delay_s=0.001)


def test_a_short_write_then_a_full_disk_resumes_at_the_exact_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (issue 14, item 2): the disk takes half a batch, then refuses (ENOSPC).
    The retry must continue the cut line where the short write stopped: no crash mark in
    the middle of it, no second line without a number."""
    sink = RotatingFileSink(tmp_path, max_file_bytes=1 << 20, max_files=2)
    sink.open()
    real_write = os.write
    faults = ["short", "enospc"]

    def failing_write(fd: int, data: memoryview | bytes) -> int:
        if fd == sink._fd and faults:
            fault = faults.pop(0)
            if fault == "short":
                return real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(rotating_file.os, "write", failing_write)

    async def run() -> None:
        pipeline = LogPipeline(Sequencer(0), FORMATTERS["json"], 1 << 20)
        echo = StderrEcho(io.StringIO())
        events = ServerEvents("test", pipeline, echo)
        writer = BatchWriter(pipeline, sink, events, Health(), FAST_RETRY)
        pipeline.submit([LogRecord(message=f"message {i}") for i in range(50)])
        pipeline.close()  # the writer still writes everything waiting, then returns
        await writer.run()
        echo.close(1.0)

    asyncio.run(run())
    sink.close()
    assert not faults
    data = (tmp_path / "_main.log").read_bytes()
    assert CUT_MARK not in data
    lines = [json.loads(line) for line in data.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert [line["message"] for line in lines[:50]] == [f"message {i}" for i in range(50)]
    assert lines[50]["message"].startswith("write attempt 1 failed")
