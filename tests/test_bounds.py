"""Bounds on memory, CPU and descriptors that a client cannot push the server past (issue 14,
items 7-11, 16, 18): each test provokes the bound against the real server."""

from __future__ import annotations

import re
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from support import RunningServer, msg_frame, numbered_frames, rss_mb


@contextmanager
def stalled_disk(server: RunningServer) -> Iterator[None]:
    """Every write to the log fails (EFBIG) until the block ends: the server's file size
    limit is set to what it has written (Python ignores SIGXFSZ, so writes just fail)."""
    pid = server.process.pid
    size = server.active_log.stat().st_size
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
    try:
        yield
    finally:
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))


def queued_lines(server: RunningServer) -> int:
    match = re.search(r"queued=(\d+)", server.health())
    assert match is not None
    return int(match.group(1))


class Flood(threading.Thread):
    """Sends `data` on one connection; held back by TCP flow control when intake pauses."""

    def __init__(self, server: RunningServer, data: bytes) -> None:
        super().__init__(daemon=True)
        self.server, self.data = server, data
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            address = ("127.0.0.1", self.server.tcp_port)
            with socket.create_connection(address, timeout=120) as sock:
                sock.sendall(self.data)
        except BaseException as exc:
            self.errors.append(exc)


def test_a_connection_opened_while_intake_is_paused_is_held_back(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Item 7: before the fix one new connection pushed ~165 MB past a 1 MB queue bound
    (uvloop ignored the pause asked for in connection_made)."""
    server = server_factory("--tcp_only", "--max_queue_bytes", "1MB")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    late_count = 400_000
    with stalled_disk(server):
        first = Flood(server, numbered_frames("first", 100_000))
        first.start()
        for _ in range(100):  # until intake has paused: the queue stops growing
            before = queued_lines(server)
            time.sleep(0.1)
            if before and queued_lines(server) == before:
                break
        baseline = rss_mb(server.process.pid)
        late = Flood(server, numbered_frames("late", late_count))
        late.start()
        peak = baseline
        for _ in range(20):
            time.sleep(0.1)
            peak = max(peak, rss_mb(server.process.pid))
        assert late.is_alive(), "the new connection must be held back by TCP flow control"
        queued = queued_lines(server)  # health is answered while intake is paused
        assert queued < late_count / 4, f"intake did not stop: {queued} lines queued"
        assert peak - baseline < 20, f"RSS grew by {peak - baseline:.0f} MB over {baseline:.0f}"
    first.join(timeout=120)
    late.join(timeout=120)
    assert not first.errors and not late.errors, (first.errors, late.errors)
    lines = server.wait_for_text("late    n=", late_count, timeout_s=120)
    got = [int(m.group(1)) for ln in lines if (m := re.search(r"late    n=(\d{7}) ", ln))]
    assert got == list(range(late_count)), "every message written once, in order"
