"""--forward kafka://... against a real broker (the session's `kafka_broker`): every line in
order with its key and fields, a broker that goes away and comes back, a server killed with
SIGKILL, Kafka unreachable at start, a topic that does not exist yet, lines rotated away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support import RunningServer, free_port, msg_frame, numbered_frames, scrape, seq_of

from log_server.core.format import parse_sequence
from log_server.forward.checkpoint import Checkpoint
from log_server.forward.target import parse_forward_url
from log_server.history.parse import parse_line

from .kafka_broker import KafkaBroker
from .kafka_records import Received, read_topic, topic_exists

Factory = Callable[..., RunningServer]


def _new_topic() -> str:
    return f"logs-{uuid.uuid4().hex[:10]}"


def _url(broker: KafkaBroker, topic: str, options: str = "") -> str:
    return f"kafka://{broker.bootstrap}/{topic}{options}"


def _seq(record: Received) -> int:
    return int(json.loads(record.value)["seq"])


def _file_lines(server: RunningServer) -> dict[int, str]:
    return {parse_sequence(line.encode()) or 0: line for line in server.lines()}


def _read_through(broker: KafkaBroker, topic: str, last: int) -> list[Received]:
    """The topic's records until one has sequence number `last` or more."""
    return read_topic(broker.bootstrap, topic, lambda rs: any(_seq(r) >= last for r in rs[-50:]))


def _forwarder_pids(server: RunningServer) -> list[int]:
    """The server's child processes: its forwarders (forward/child.py)."""
    tasks = Path(f"/proc/{server.process.pid}/task")
    return [int(p) for t in tasks.iterdir() for p in (t / "children").read_text().split()]


def _wait_gone(pids: list[int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"forwarder processes {pids} still running"
        time.sleep(0.05)


def _checkpoint(server: RunningServer, url: str) -> int | None:
    target = parse_forward_url(url)
    return Checkpoint(server.log_dir / target.checkpoint_name, url).load()


@pytest.mark.parametrize("line_format", ["text", "json"])
def test_every_written_line_arrives_in_order_with_key_and_fields(
    kafka_broker: KafkaBroker, server_factory: Factory, line_format: str
) -> None:
    topic = _new_topic()
    url = _url(kafka_broker, topic)
    server = server_factory("--forward", url, "--format", line_format)
    server.send(
        numbered_frames("order", 3000)
        + msg_frame(hostname="alpha", message="from alpha", loggerName="a")
        + msg_frame(hostname="beta", message="from beta", loggerName="b")
    )
    server.wait_for_text("from beta")
    assert server.stop() == 0
    lines = _file_lines(server)
    last = max(lines)
    received = _read_through(kafka_broker, topic, last)
    seqs = [_seq(r) for r in received]
    assert seqs == sorted(lines), "every line, once, in sequence order"
    for record in received:
        fields = json.loads(record.value)
        line = lines[fields["seq"]]
        assert fields == parse_line(line.encode() + b"\n")
        assert record.key == fields["hostname"]
        if line_format == "json":
            assert record.value == line.encode()
    keys = {json.loads(r.value)["message"]: r.key for r in received[-5:]}
    assert (keys["from alpha"], keys["from beta"]) == ("alpha", "beta")
    # Stopped with SIGTERM: the last lines (the server's own `stopped`) were forwarded and
    # the checkpoint has them all.
    assert _checkpoint(server, url) == last


def test_a_topic_that_does_not_exist_is_created_by_the_broker(
    kafka_broker: KafkaBroker, server_factory: Factory
) -> None:
    """The broker's auto.create.topics.enable (Kafka's default, and the fixture's) creates
    it on the first record; with it off, librdkafka's error comes as forward_failed."""
    topic = _new_topic()
    assert not topic_exists(kafka_broker.bootstrap, topic)
    server = server_factory("--forward", _url(kafka_broker, topic, "?key=server&acks=1"))
    server.send(msg_frame(hostname="alpha", message="first ever"))
    last = seq_of(server.wait_for_line("first ever"))
    received = _read_through(kafka_broker, topic, last)
    assert topic_exists(kafka_broker.bootstrap, topic)
    assert [_seq(r) for r in received if _seq(r) <= last] == list(range(1, last + 1))
    assert {r.key for r in received} == {"LogServer"}, "key=server: the server's --name"


def test_broker_stopped_for_a_while_loses_nothing(
    kafka_broker: KafkaBroker, server_factory: Factory
) -> None:
    topic = _new_topic()
    server = server_factory("--forward", _url(kafka_broker, topic), "--stats_interval", "1")
    server.send(numbered_frames("before", 500))
    _read_through(kafka_broker, topic, seq_of(server.wait_for_line("before  n=0000499")))
    kafka_broker.stop()
    try:
        server.send(numbered_frames("during", 2000))
        server.wait_for_line("during  n=0001999")  # intake goes on while Kafka is away
        warning = server.wait_for_line("forward_unreachable", timeout_s=60)
        assert "the lines wait in the log files" in warning
        lag = server.health().split("forward_lag_lines=")[1].split()[0]
        assert int(lag) >= 2000
        server.wait_for_text("forward_lag_lines=", timeout_s=10)  # the stats line has it
    finally:
        kafka_broker.start()
    server.send(msg_frame(message="after the broker came back"))
    last = seq_of(server.wait_for_line("after the broker came back"))
    received = _read_through(kafka_broker, topic, last)
    seqs = [_seq(r) for r in received if _seq(r) <= last]
    assert seqs == list(range(1, last + 1)), "nothing lost, nothing twice, in order"
    server.wait_for_line("forward_reachable", timeout_s=30)


def test_server_killed_resumes_from_checkpoint(
    kafka_broker: KafkaBroker, server_factory: Factory
) -> None:
    topic = _new_topic()
    url = _url(kafka_broker, topic)
    first = server_factory("--forward", url)
    first.send(numbered_frames("first", 1000))
    _read_through(kafka_broker, topic, seq_of(first.wait_for_line("first   n=0000999")))
    first.send(numbered_frames("second", 30_000))
    first.wait_for_line("second  n=0029999", timeout_s=30)
    children = _forwarder_pids(first)
    assert len(children) == 1
    first.stop(signal.SIGKILL)
    _wait_gone(children)  # its stdin closed with the server: it saves and ends at once
    at_kill = _checkpoint(first, url)
    assert at_kill is not None and at_kill >= 1000
    second = server_factory("--forward", url, log_dir=first.log_dir)
    started = second.wait_for_text("forward_started", count=2)
    assert f"from seq {at_kill + 1} " in [line for line in started if "forward_started" in line][-1]
    second.send(msg_frame(message="after the restart"))
    last = seq_of(second.wait_for_line("after the restart"))
    received = _read_through(kafka_broker, topic, last)
    seqs = [_seq(r) for r in received if _seq(r) <= last]
    # What the first server sent, in order, then the second from just after the checkpoint:
    # only the lines between the checkpoint and the kill can be there twice.
    drops = [i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]]
    assert len(drops) <= 1, "one restart, so at most one step back"
    cut = drops[0] if drops else seqs.index(at_kill + 1)
    assert seqs[:cut] == list(range(1, seqs[cut - 1] + 1))
    assert seqs[cut:] == list(range(at_kill + 1, last + 1))


def test_kafka_unreachable_at_start(server_factory: Factory) -> None:
    """No broker at all: the server starts, takes and writes lines, says so, and stops."""
    url = f"kafka://127.0.0.1:{free_port()}/logs"
    server = server_factory("--forward", url)
    server.send(numbered_frames("offline", 200))
    server.wait_for_line("offline n=0000199")
    warning = server.wait_for_line("forward_unreachable", timeout_s=30)
    assert url in warning and "WARNING" in warning
    health = server.health()
    assert health.startswith("OK ")
    assert int(health.split("forward_lag_lines=")[1].split()[0]) >= 200
    children = _forwarder_pids(server)
    assert len(children) == 1
    assert server.stop(timeout_s=20) == 0
    _wait_gone(children, timeout_s=1)
    assert _checkpoint(server, url) is None
    assert "forward_unreachable" in server.stderr()


def test_lines_rotated_away_before_forwarding_are_reported(
    kafka_broker: KafkaBroker, server_factory: Factory, tmp_path: Path
) -> None:
    topic = _new_topic()
    url = _url(kafka_broker, topic)
    log_dir = tmp_path / "logs"
    first = server_factory("--forward", url, log_dir=log_dir)
    first.send(msg_frame(message="forwarded"))
    first.wait_for_line("forwarded")
    assert first.stop() == 0
    checkpoint = _checkpoint(first, url)
    assert checkpoint is not None
    # Forwarding off while the files rotate past the checkpoint.
    offline = server_factory("--max_file_size", "8KB", "--max_files", "2", log_dir=log_dir)
    offline.send(numbered_frames("unsent", 400))
    offline.wait_for_line("unsent  n=0000399")
    assert offline.stop() == 0
    oldest = seq_of(offline.log_files()[0].read_text().splitlines()[0])
    assert oldest > checkpoint + 1
    again = server_factory("--forward", url, log_dir=log_dir)
    gap = again.wait_for_line("forward_gap")
    assert f"lines {checkpoint + 1}..{oldest - 1} " in gap and "ERROR" in gap
    again.send(msg_frame(message="after the gap"))
    last = seq_of(again.wait_for_line("after the gap"))
    seqs = [_seq(r) for r in _read_through(kafka_broker, topic, last) if _seq(r) <= last]
    assert seqs == [*range(1, checkpoint + 1), *range(oldest, last + 1)]


def test_unreadable_checkpoint_stops_the_start(tmp_path: Path) -> None:
    url = "kafka://127.0.0.1:9/logs"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / parse_forward_url(url).checkpoint_name).write_text("{half")
    result = subprocess.run(
        [sys.executable, "-m", "log_server", "--log_dir", str(log_dir), "--port", "0"]
        + ["--grpc_port", "0", "--forward", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot read the forwarding checkpoint" in result.stderr
    assert "remove it to forward again from the oldest line kept" in result.stderr


def test_a_killed_forwarding_process_is_started_again(
    kafka_broker: KafkaBroker, server_factory: Factory
) -> None:
    topic = _new_topic()
    server = server_factory("--forward", _url(kafka_broker, topic))
    server.send(msg_frame(message="before the kill"))
    _read_through(kafka_broker, topic, seq_of(server.wait_for_line("before the kill")))
    (child,) = _forwarder_pids(server)
    os.kill(child, signal.SIGKILL)
    failed = server.wait_for_line("forward_failed")
    assert "the forwarding process exited with -9" in failed and "ERROR" in failed
    server.send(msg_frame(message="after the kill"))
    last = seq_of(server.wait_for_line("after the kill"))
    seqs = [_seq(r) for r in _read_through(kafka_broker, topic, last)]
    assert set(range(1, last + 1)) <= set(seqs)
    assert _forwarder_pids(server) != [child]


def test_the_forwarding_process_runs_only_on_idle_cores(
    kafka_broker: KafkaBroker, server_factory: Factory
) -> None:
    """SCHED_IDLE for the process and every thread it started (librdkafka's among them), so
    that forwarding never takes a core from intake."""
    topic = _new_topic()
    server = server_factory("--forward", _url(kafka_broker, topic))
    server.send(msg_frame(message="forwarded"))
    _read_through(kafka_broker, topic, seq_of(server.wait_for_line("forwarded")))
    (child,) = _forwarder_pids(server)
    policies = {}
    for task in Path(f"/proc/{child}/task").iterdir():
        name = (task / "comm").read_text().strip()
        # stat(5): field 41 is the policy; the fields after the ")" start at field 3.
        policies[name] = int((task / "stat").read_text().rsplit(")", 1)[1].split()[38])
    assert any(name.startswith("rdk:") for name in policies), policies
    assert set(policies.values()) == {os.SCHED_IDLE}, policies
    own = int(Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[38])
    assert own == os.SCHED_OTHER, "the server itself keeps the normal policy"


def test_metrics_show_the_forwarders_lag(
    kafka_broker: KafkaBroker, server_factory: Factory
) -> None:
    """/metrics has each target's lag, as the health line does: lines behind while the
    broker is away, none once it is back and has acknowledged everything."""
    url = _url(kafka_broker, _new_topic())
    server = server_factory("--forward", url, "--metrics_port", "0", "--tcp_only")
    labels = frozenset({("forwarder", url)})
    server.send(numbered_frames("before", 50))
    server.wait_for_text("before", count=50)
    deadline = time.monotonic() + 30
    while scrape(server)[("log_server_forwarder_lag_lines", labels)] != 0:
        assert time.monotonic() < deadline, "the forwarder never caught up"
        time.sleep(0.1)
    kafka_broker.stop()
    try:
        server.send(numbered_frames("away", 200))
        server.wait_for_text("away    n=", count=200)
        behind = scrape(server)
        assert behind[("log_server_forwarder_lag_lines", labels)] >= 200
        assert behind[("log_server_forwarder_lag_seconds", labels)] >= 0
    finally:
        kafka_broker.start()
    deadline = time.monotonic() + 60
    while scrape(server)[("log_server_forwarder_lag_lines", labels)] != 0:
        assert time.monotonic() < deadline, "the forwarder never caught up after the broker"
        time.sleep(0.2)
