"""The operator's copy of the server's warnings on stderr, best effort.

stderr may be a pipe nobody reads (it then blocks when full) or a file on the disk that is
failing (it then raises). Neither may stop or slow the server, whose own log holds every
line anyway: a thread of its own writes the echo, a bounded queue sits in front of it, and
what cannot be written is dropped and counted."""

from __future__ import annotations

import queue
import sys
import threading
from typing import TextIO

QUEUE_LINES = 1000


class StderrEcho:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._lines: queue.Queue[str | None] = queue.Queue(QUEUE_LINES)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="stderr-echo", daemon=True)
        self._thread.start()

    def write_line(self, line: str) -> None:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float) -> None:
        """Let what is queued out for at most `timeout_s` (a blocked stderr is left behind:
        the thread is a daemon)."""
        try:
            self._lines.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (line := self._lines.get()) is not None:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # ValueError: the stream was closed
                self.dropped += 1
