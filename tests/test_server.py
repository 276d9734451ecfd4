"""The whole server: rotation, restart, shutdown, its own lines, and a failing disk."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import RunningServer, fill_disk, full_device_at, msg_frame, seq_of

Factory = Callable[..., RunningServer]


def test_rotation_keeps_newest_in_dot_zero_and_contiguous_sequence(
    server_factory: Factory,
) -> None:
    server = server_factory("--max_file_size", "4KB", "--max_files", "3")
    # ~200 bytes a line: 40 lines per batch of frames -> many rotations.
    for batch in range(10):
        server.send(
            b"".join(msg_frame(message=f"rot-{batch}-{i:02d} " + "x" * 60) for i in range(40))
        )
    server.wait_for_text("rot-9-39")
    assert server.stop() == 0  # no rotation while the files are inspected
    names = sorted(p.name for p in server.log_dir.glob("_main.log*"))
    assert names == ["_main.log", "_main.log.0", "_main.log.1", "_main.log.2"]
    for path in server.log_files():
        data = path.read_bytes()
        assert len(data) <= 4096, path
        assert data.endswith(b"\n") or not data
    newest_rotated = server.log_dir / "_main.log.0"
    assert newest_rotated.stat().st_mtime <= server.active_log.stat().st_mtime + 1
    seqs = [seq_of(line) for line in server.lines()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "contiguous across kept files"
    assert seq_of(newest_rotated.read_text().splitlines()[-1]) + 1 == seq_of(
        server.active_log.read_text().splitlines()[0]
    )
    assert any("file_rotated" in line for line in server.lines())


def test_restart_continues_the_sequence(server_factory: Factory, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    first = server_factory(log_dir=log_dir)
    first.send(msg_frame(message="before restart"))
    first.wait_for_text("before restart")
    assert first.stop() == 0
    last_before = seq_of(first.lines()[-1])

    second = server_factory(log_dir=log_dir)
    second.send(msg_frame(message="after restart"))
    line = second.wait_for_line("after restart")
    seqs = [seq_of(ln) for ln in second.lines()]
    assert seqs == sorted(set(seqs))
    assert seq_of(line) > last_before
    assert seqs[seqs.index(last_before) + 1] == last_before + 1, "no gap, no reuse"


def test_restart_continues_after_a_rotation_left_the_active_file_empty(
    server_factory: Factory, tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "_main.log.0").write_text("      7001 older line\n")
    (log_dir / "_main.log").write_text("")
    server = server_factory(log_dir=log_dir)
    assert seq_of(server.wait_for_line("listening on")) == 7002


def test_sigterm_drains_a_burst_sent_just_before(server_factory: Factory) -> None:
    server = server_factory()
    count = 20_000
    data = b"".join(msg_frame(message=f"burst-{i}") for i in range(count))
    with server.connect() as sock:
        sock.sendall(data)
        server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    lines = server.lines()
    burst = [int(ln.rsplit("-", 1)[1]) for ln in lines if re.search(r" burst-\d+$", ln)]
    assert burst == list(range(count)), "every message of the burst, once, in order"
    assert "intake stopped after" in lines[-1]
    assert any("SIGTERM received: draining connections" in ln for ln in lines)


def test_sigint_also_stops_cleanly(server_factory: Factory) -> None:
    server = server_factory()
    server.send(msg_frame(message="last words"))
    server.wait_for_text("last words")
    assert server.stop(signal.SIGINT) == 0
    assert any("SIGINT received" in ln for ln in server.lines())


def test_own_lines_startup_and_throughput(server_factory: Factory) -> None:
    server = server_factory("--name", "Collector", "--stats_interval", "0.2")
    started = server.wait_for_line("listening on")
    assert re.search(
        r"Collector\s+INFO\s+log_server\s+started\s+\"log_server \S+ listening on "
        r"tcp=127\.0\.0\.1:\d+ grpc=127\.0\.0\.1:\d+; log_dir=",
        started,
    ), started
    server.send(msg_frame(message="counted"))
    stats = server.wait_for_line("throughput msgs/s=")
    assert re.search(r"msgs/s=[\d.]+ MB/s=[\d.]+ queued=\d+ connections=\d+", stats)


def test_json_format_end_to_end(server_factory: Factory) -> None:
    server = server_factory("--format", "json")
    server.send(msg_frame(message="as json\nline", level="error", hostname="h"))
    line = server.wait_for_line("as json")
    obj = json.loads(line)
    assert obj["message"] == "as json\nline" and obj["level"] == "ERROR"
    assert obj["seq"] > 1 and obj["received_at"].endswith("+00:00")
    assert obj["timestamp"] == obj["received_at"]
    assert server.stop() == 0
    again = server_factory("--format", "json", log_dir=server.log_dir)  # seq read from JSON
    again.send(msg_frame(message="second run"))
    assert json.loads(again.wait_for_line("second run"))["seq"] > obj["seq"]


def test_failing_disk_degrades_keeps_everything_and_recovers(server_factory: Factory) -> None:
    """A real write error: the active file is replaced by a device like /dev/full (ENOSPC)."""
    server = server_factory("--tcp_only")
    server.send(msg_frame(message="before fault"))
    server.wait_for_text("before fault")
    active = server.active_log
    kept = active.with_name("before-fault.log")
    os.replace(active, kept)
    full_device_at(active)
    with server.connect() as sock:
        sock.sendall(b"".join(msg_frame(message=f"during fault {i}") for i in range(50)))
    deadline = time.monotonic() + 15
    while not (status := server.health()).startswith("DEGRADED"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert "No space left on device" in status
    assert "writes_degraded" in server.stderr()

    os.unlink(active)  # the disk "recovers": the writer reopens the path as a new file
    lines = server.wait_for_text("writing again after", timeout_s=20)
    assert server.health().startswith("OK ")
    during = [ln for ln in lines if "during fault" in ln]
    assert [int(ln.rsplit(" ", 1)[1]) for ln in during] == list(range(50))
    text = active.read_text()
    assert "write attempt 1 failed" in text and "No space left on device" in text


def test_grpc_health_follows_write_failures(server_factory: Factory) -> None:
    server = server_factory()
    active = server.active_log
    os.replace(active, active.with_name("moved.log"))
    full_device_at(active)
    server.send(msg_frame(message="cannot be written yet"))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def status() -> int:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            return int(reply.status)

        deadline = time.monotonic() + 15
        while status() != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.unlink(active)
        server.wait_for_text("cannot be written yet", timeout_s=20)
        deadline = time.monotonic() + 15
        while status() != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_refused_connection_when_stopped(server_factory: Factory) -> None:
    server = server_factory()
    port = server.tcp_port
    assert server.stop() == 0
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return
    raise AssertionError("the port still accepts connections after shutdown")


def test_loopback_detection_for_the_exposure_warning() -> None:
    from log_server.server import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("127.1.2.3") and _is_loopback("::1")
    assert _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5")
    assert not _is_loopback("::") and not _is_loopback("myhost.example")


def test_log_directory_removed_while_running_is_recreated(server_factory: Factory) -> None:
    import shutil

    server = server_factory("--tcp_only")
    server.send(msg_frame(message="before removal"))
    server.wait_for_text("before removal")
    shutil.rmtree(server.log_dir)
    server.send(msg_frame(message="after removal"))
    line = server.wait_for_line("after removal")
    assert server.active_log.exists() and "after removal" in line
    assert server.health().startswith("OK ")


def test_read_only_log_directory_degrades_then_recovers(server_factory: Factory) -> None:
    """The directory made unchangeable (chattr +i: root ignores mode bits) while running:
    rotation cannot rename, writes fail, health says DEGRADED with the reason; once the
    directory is writable again everything queued is written."""
    import shutil
    import subprocess

    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed: cannot make a directory read-only")
    server = server_factory("--tcp_only", "--max_file_size", "2KB", "--max_files", "100")
    server.send(msg_frame(message="before read-only"))
    server.wait_for_text("before read-only")
    made = subprocess.run(["chattr", "+i", str(server.log_dir)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {made.stderr.decode().strip()}")
    try:
        server.send(
            b"".join(msg_frame(message=f"while read-only {i:03d} " + "y" * 40) for i in range(100))
        )
        deadline = time.monotonic() + 15
        while not (status := server.health()).startswith("DEGRADED"):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert "Operation not permitted" in status
    finally:
        subprocess.run(["chattr", "-i", str(server.log_dir)], check=True)
    lines = server.wait_for_text("writing again after", timeout_s=20)
    got = [int(m.group(1)) for ln in lines if (m := re.search(r"while read-only (\d{3}) ", ln))]
    assert got == list(range(100))
    assert server.health().startswith("OK ")


def test_a_full_disk_that_takes_part_of_a_batch_splits_no_line(
    server_factory: Factory, tiny_disk: Path
) -> None:
    """Regression (issue 14, item 2): on a real nearly full file system a batch went in
    partly; the retry put the crash mark into a line and the rest of the message became a
    second line without a number (two invalid lines in JSON)."""
    server = server_factory("--tcp_only", "--format", "json", log_dir=tiny_disk)
    server.send(msg_frame(message="before the disk fills"))
    server.wait_for_text("before the disk fills")
    filler = fill_disk(tiny_disk)
    with server.connect() as sock:
        sock.sendall(b"".join(msg_frame(message=f"while full {i:04}") for i in range(400)))
    deadline = time.monotonic() + 15
    while "write attempt 1 failed" not in server.stderr():
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)
    filler.unlink()
    server.wait_for_text("writing again after", timeout_s=20)
    records = [json.loads(line) for line in server.active_log.read_text().splitlines()]
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    messages = [r["message"] for r in records if r["message"].startswith("while full")]
    assert messages == [f"while full {i:04}" for i in range(400)]


def test_a_stderr_pipe_nobody_reads_does_not_stop_intake(server_factory: Factory) -> None:
    """Regression (issue 14, item 1): the warnings echoed to stderr filled a pipe nobody
    read, the server blocked on it and took no more input."""
    unread, stderr = os.pipe()
    try:
        server = server_factory("--tcp_only", stderr=stderr)
        for _ in range(1000):  # ~100 KB of warnings: more than a pipe holds (64 KiB)
            server.send(b"\xff\xff\xff\xff")
        server.send(msg_frame(message="still taking input"))
        server.wait_for_text("still taking input")
        assert server.health().startswith("OK ")
        assert server.stop() == 0
    finally:
        os.close(unread)
        os.close(stderr)


def test_a_stderr_on_a_full_disk_does_not_stop_the_writer(
    server_factory: Factory, tiny_disk: Path
) -> None:
    """Regression (issue 14, item 1): echoing a write failure to a stderr that fails
    itself (here /dev/full) ended the writer: nothing more was written, health said OK."""
    with open("/dev/full", "w") as full:
        server = server_factory("--tcp_only", log_dir=tiny_disk, stderr=full.fileno())
    server.send(msg_frame(message="before the disk fills"))
    server.wait_for_text("before the disk fills")
    filler = fill_disk(tiny_disk)
    with server.connect() as sock:
        sock.sendall(b"".join(msg_frame(message=f"while full {i:04}") for i in range(400)))
    deadline = time.monotonic() + 15
    while not server.health().startswith("DEGRADED"):
        assert time.monotonic() < deadline, "the writes never failed"
        time.sleep(0.05)
    filler.unlink()
    lines = server.wait_for_text("while full 0399", timeout_s=20)
    assert sum("while full" in line for line in lines) == 400
    # The lines reach the file before the write's completion reaches the loop: health
    # follows within moments, not necessarily by the time a reader sees them.
    deadline = time.monotonic() + 10
    while not (health := server.health()).startswith("OK "):
        assert time.monotonic() < deadline, health
        time.sleep(0.05)


def test_sighup_reopens_the_files_and_loses_nothing(server_factory: Factory) -> None:
    """Regression (issue 14, item 3): SIGHUP killed the server at once, losing its queue.
    Now it is logrotate's signal: after the file was renamed away, lines go to a new one."""
    server = server_factory("--tcp_only")
    server.send(msg_frame(message="before rotation"))
    server.wait_for_text("before rotation")
    os.replace(server.active_log, server.log_dir / "rotated-by-logrotate")
    server.process.send_signal(signal.SIGHUP)
    server.send(msg_frame(message="after rotation"))
    server.wait_for_text("after rotation")
    # The signal and the message race each other into the server: wait for both.
    server.wait_for_text("reopening the log files")
    assert server.process.poll() is None
    assert "before rotation" in (server.log_dir / "rotated-by-logrotate").read_text()
    assert "reopening the log files" in server.active_log.read_text()
    assert server.stop() == 0


def test_a_process_group_stop_is_one_stop_not_two(server_factory: Factory) -> None:
    """Regression (issue 14, item 4): `timeout` or `kill -- -PGID` around `make run` sends
    SIGTERM twice (to make and to the server); the second one abandoned the drain and the
    server exited 1 with "accepted lines not written" although the writer was keeping up."""
    server = server_factory("--tcp_only")
    count = 50_000
    with server.connect() as sock:
        sock.sendall(b"".join(msg_frame(message=f"group-{i}") for i in range(count)))
    server.process.send_signal(signal.SIGTERM)
    server.process.send_signal(signal.SIGTERM)
    server.process.send_signal(signal.SIGINT)
    assert server.stop() == 0, server.stderr()
    messages = [line for line in server.lines() if "group-" in line]
    assert len(messages) == count
    assert "still writing" in server.stderr()


def test_a_repeated_signal_abandons_a_drain_that_has_stalled(
    server_factory: Factory, tiny_disk: Path
) -> None:
    """The way out when the disk cannot take the queue: once nothing has been written for
    2 s, a repeated signal stops at once and says what was lost."""
    server = server_factory("--tcp_only", log_dir=tiny_disk)
    server.send(msg_frame(message="before the disk fills"))
    server.wait_for_text("before the disk fills")
    fill_disk(tiny_disk)
    server.send(b"".join(msg_frame(message=f"stuck {i}") for i in range(2000)))
    deadline = time.monotonic() + 15
    while not server.health().startswith("DEGRADED"):
        assert time.monotonic() < deadline, "the writes never failed"
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(2.5)
    server.process.send_signal(signal.SIGTERM)
    assert server.stop() == 1
    assert "accepted lines not written" in server.stderr()
