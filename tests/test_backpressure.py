"""Bounded memory: when the disk does not take writes, intake stops (TCP flow control pushes
back on the sender) and the server's memory stays flat; when the disk recovers, every
message sent is written, in order."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable

from support import RunningServer, full_device_at, msg_frame, numbered_frames, rss_mb

FLOOD = 400_000  # ~70 MB of frames: far more than the queue may hold


def test_flood_against_a_stalled_disk_keeps_memory_bounded_and_loses_nothing(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory("--tcp_only", "--max_queue_bytes", "2MB")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    baseline = rss_mb(server.process.pid)
    active = server.active_log
    os.replace(active, active.with_name("before.log"))
    full_device_at(active)  # every write now fails: the writer stalls and retries

    data = numbered_frames("flood", FLOOD)
    errors: list[BaseException] = []

    def flood() -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.tcp_port), timeout=120) as s:
                s.sendall(data)
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=flood)
    sender.start()
    peak = baseline
    for _ in range(30):  # 3 s of flooding against the stalled disk
        time.sleep(0.1)
        peak = max(peak, rss_mb(server.process.pid))
    assert sender.is_alive(), "the sender must be held back by TCP flow control"
    status = server.health()
    assert status.startswith("DEGRADED")
    queued = int(re.search(r"queued=(\d+)", status).group(1))  # type: ignore[union-attr]
    assert queued < FLOOD / 4, f"intake did not stop: {queued} lines queued"
    assert peak - baseline < 20, f"RSS grew by {peak - baseline:.0f} MB over {baseline:.0f} MB"

    os.unlink(active)  # the disk recovers
    sender.join(timeout=120)
    assert not sender.is_alive() and not errors, errors
    lines = server.wait_for_text("flood   n=", FLOOD, timeout_s=120)
    got = [int(m.group(1)) for ln in lines if (m := re.search(r"flood   n=(\d{7}) ", ln))]
    assert got == list(range(FLOOD)), "every message written once, in order"


def test_several_floods_against_a_stalled_disk_stay_bounded_and_in_order(
    server_factory: Callable[..., RunningServer],
) -> None:
    """As above with three connections at once, each pausing itself after large reads to let
    the others run (sources/tcp.py): intake still stops at the bound, and each connection's
    messages are written once, in order."""
    server = server_factory("--tcp_only", "--max_queue_bytes", "16MB")
    server.send(msg_frame(message="warm up"))
    server.wait_for_text("warm up")
    active = server.active_log
    os.replace(active, active.with_name("before.log"))
    full_device_at(active)

    per_connection = FLOOD // 2
    tags = ["floodA", "floodB", "floodC"]
    errors: list[BaseException] = []

    def flood(tag: str) -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.tcp_port), timeout=120) as s:
                s.sendall(numbered_frames(tag, per_connection))
        except BaseException as exc:
            errors.append(exc)

    senders = [threading.Thread(target=flood, args=(tag,)) for tag in tags]
    for sender in senders:
        sender.start()
    time.sleep(2)  # flooding against the stalled disk
    assert any(sender.is_alive() for sender in senders), "senders must be held back"
    status = server.health()
    queued = int(re.search(r"queued=(\d+)", status).group(1))  # type: ignore[union-attr]
    # 16 MB of ~170-byte lines is about 100,000; unbounded intake would queue most of the
    # 600,000 sent (all but what the kernel's socket buffers hold).
    assert queued < len(tags) * per_connection / 4, f"intake did not stop: {queued} lines queued"

    os.unlink(active)
    for sender in senders:
        sender.join(timeout=120)
    assert not errors, errors
    for tag in tags:
        lines = server.wait_for_text(f"{tag}  n=", per_connection, timeout_s=120)
        got = [int(m.group(1)) for ln in lines if (m := re.search(rf"{tag}  n=(\d{{7}}) ", ln))]
        assert got == list(range(per_connection)), f"{tag}: every message once, in order"
