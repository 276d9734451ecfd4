"""kill -9 in the middle of heavy load (with rotations), then a restart: the files stay
readable, nothing is duplicated, and the sequence goes on above the last written number."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from support import RunningServer, msg_frame, numbered_frames

from log_server.sinks.rotating_file import CUT_MARK


def test_kill_9_under_load_then_restart(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    args = ("--tcp_only", "--max_file_size", "256KB", "--max_files", "200")
    server = server_factory(*args, log_dir=log_dir)
    data = numbered_frames("crash", 300_000)

    def flood() -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.tcp_port), timeout=30) as s:
                s.sendall(data)
        except OSError:
            pass  # the server is killed under us: expected

    sender = threading.Thread(target=flood)
    sender.start()
    server.wait_for(lambda ls: len(ls) > 20_000, timeout_s=30)  # well into the load
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    sender.join(timeout=30)
    before = server.log_files()
    tail = before[-1].read_bytes() if before[-1].exists() else b""

    restarted = server_factory(*args, log_dir=log_dir)
    restarted.send(msg_frame(message="after the crash"))
    lines = restarted.wait_for_text("after the crash")
    assert restarted.stop() == 0

    was_cut = bool(tail) and not tail.endswith(b"\n")
    cut = [ln for ln in lines if ln.endswith(CUT_MARK.decode())]
    assert len(cut) == (1 if was_cut else 0), "a line cut by the crash is marked on restart"
    seqs: list[int] = []
    for line in lines:
        if line in cut:
            continue
        head = line.split(None, 1)[0]
        assert head.isdigit(), f"unreadable line: {line[:80]!r}"
        seqs.append(int(head))
    assert seqs == sorted(set(seqs)), "strictly increasing across every file, no duplicates"
    crash_ids = [int(ln.split(" n=")[1][:7]) for ln in lines if "crash   n=" in ln]
    assert crash_ids == sorted(set(crash_ids)), "messages of the flood once each, in order"
    rotated = sorted(int(p.name.rsplit(".", 1)[1]) for p in log_dir.glob("_main.log.*"))
    assert rotated == list(range(len(rotated))), f"rotated files without holes: {rotated}"
    assert len(rotated) > 3, "the load rotated files before the kill"
