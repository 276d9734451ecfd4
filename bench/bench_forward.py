"""--forward kafka:// against a real local broker (tests/forward/kafka_broker.py, the tests'
own): how fast the forwarder ships a backlog of written lines, next to TCP ingest, and what
forwarding costs ingest (the same load with it off and on, alternating). Issue 15's goals:
forwarder >= 0.5x TCP ingest, ingest with forwarding >= 0.8x without."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import loadgen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "forward"))

Ingest = Callable[[str, tuple[str, ...], Path, Callable[[int], None] | None], dict[str, Any]]
Start = Callable[..., tuple[Any, int, int | None, float]]


def _set_policy(pid: int, policy: int) -> None:
    """Every thread of the process (the policy is per thread; new ones inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setscheduler(int(tid), policy, os.sched_param(0))
        except (OSError, ValueError):
            pass


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]


def _health(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"health\n")
        return sock.recv(4096).decode()


def _lag_lines(port: int) -> int:
    return int(_health(port).split("forward_lag_lines=")[1].split()[0])


def _forwarder_ready(port: int, timeout_s: float = 60.0) -> None:
    """Until the forwarder has shipped the server's first lines: its process has started
    and reached the broker, so the run measures forwarding, not the process starting."""
    deadline = time.monotonic() + timeout_s
    while _lag_lines(port) > 0 and time.monotonic() < deadline:
        time.sleep(0.02)


def _topic_size(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "log_level": 0})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
        return int(high - low)
    finally:
        consumer.close()


def _forward_backlog(
    start: Start, log_dir: Path, broker: Any, line_format: str, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Start a server with --forward on a directory full of written lines: lines per second
    from ready until Kafka has acknowledged them all. Nothing else runs, and the broker is in
    the normal class: it gets the CPU it needs before the forwarder (idle class), as on a
    machine of its own."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    _set_policy(broker.process.pid, os.SCHED_OTHER)
    try:
        return _time_backlog(start, log_dir, broker, topic, line_format, timeout_s)
    finally:
        _set_policy(broker.process.pid, os.SCHED_IDLE)


def _time_backlog(
    start: Start,
    log_dir: Path,
    broker: Any,
    topic: str,
    line_format: str,
    timeout_s: float,
) -> dict[str, Any]:
    """The rate is taken from Kafka's side: the topic's end offset, sampled every 10 ms,
    from when a tenth of the backlog has arrived to nine tenths, so that the forwarding
    process's start-up (about half a second of imports and connecting) and the last
    acknowledgement are not in it; the whole time, start-up included, is kept too."""
    from confluent_kafka import Consumer, TopicPartition

    config = {"bootstrap.servers": broker.bootstrap, "group.id": "bench", "log_level": 0}
    consumer = Consumer(config)
    broker_cpu = loadgen.cpu_seconds(broker.process.pid)
    proc, port, _, _ = start(
        log_dir,
        "--tcp_only",
        "--format",
        line_format,
        "--forward",
        f"kafka://{broker.bootstrap}/{topic}",
    )
    try:
        started = time.perf_counter()
        backlog = _lag_lines(port)
        deadline = started + timeout_s
        marks: dict[float, float] = {}
        while time.perf_counter() < deadline:
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=1)
            except Exception:  # the topic is created by the first record
                high = 0
            for share in (0.1, 0.9):
                if share not in marks and high >= share * backlog:
                    marks[share] = time.perf_counter()
            if high >= backlog:
                break
            time.sleep(0.01)
        while (lag := _lag_lines(port)) > 0 and time.perf_counter() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        # The forwarding process's CPU (forward/child.py), start-up included.
        cpu = sum(loadgen.cpu_seconds(pid) for pid in _children(proc.pid))
        broker_cpu = loadgen.cpu_seconds(broker.process.pid) - broker_cpu
    finally:
        proc.stop()
        consumer.close()
    in_kafka = _topic_size(broker.bootstrap, topic)
    steady = marks.get(0.9, elapsed) - marks.get(0.1, 0.0)
    return {
        "format": line_format,
        "lines": backlog,
        "complete": lag == 0,
        "in_kafka": in_kafka,
        "seconds": round(elapsed, 3),
        "lines_per_s": round(0.8 * backlog / steady) if steady > 0 else 0,
        "lines_per_s_with_start_up": round(backlog / elapsed),
        "forwarder_cpu_us_per_line": round(cpu / max(backlog, 1) * 1e6, 2),
        "broker_cpu_us_per_line": round(broker_cpu / max(backlog, 1) * 1e6, 2),
    }


def bench_forward(
    ingest: Ingest, start: Start, n: int, runs: int, backlog_formats: tuple[str, ...]
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": "forward to Kafka (local broker)", "n": n}
    try:
        from kafka_broker import start_broker

        broker_dir = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
        broker = start_broker(broker_dir)
        assert broker.process is not None
        # The broker stands in for one on another machine: while the server takes load, it
        # gets only the CPU that the server and its forwarder leave.
        _set_policy(broker.process.pid, os.SCHED_IDLE)
    except Exception as exc:  # no java, no mvn, no jars: say so, skip the case
        print(f"  forward to Kafka: skipped, the broker cannot start: {exc}", flush=True)
        return {**row, "skipped": str(exc)}
    try:
        # A broker in service has long compiled its hot paths; a new one spends its first
        # million records or so in the JIT (the forwarder ran at half speed on it).
        with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
            ingest("ingest for the broker's warm-up", (), Path(tmp), None)
            warm_up = _forward_backlog(start, Path(tmp), broker, "text")
        print(f"  broker warm-up: {warm_up['lines_per_s']:,} lines/s (not counted)", flush=True)
        off_runs, on_runs = [], []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
                off_runs.append(ingest("ingest, forwarding off", (), Path(tmp), None))
            with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                on_runs.append(
                    ingest(
                        "ingest, forwarding on",
                        ("--forward", f"kafka://{broker.bootstrap}/{topic}"),
                        Path(tmp),
                        _forwarder_ready,
                    )
                )
        off = statistics.median(r["msgs_per_s"] for r in off_runs)
        on = statistics.median(r["msgs_per_s"] for r in on_runs)
        backlogs = []
        for line_format in backlog_formats:
            with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
                log_dir = Path(tmp)
                name = f"ingest ({line_format}) for the backlog"
                ingest(name, ("--format", line_format), log_dir, None)
                backlog = _forward_backlog(start, log_dir, broker, line_format)
            print(
                f"  forwarder ({line_format:<4})       {backlog['lines_per_s']:>10,} lines/s "
                f"({backlog['lines_per_s_with_start_up']:,} with start-up)  "
                f"{backlog['forwarder_cpu_us_per_line']:>6} µs CPU/line "
                f"(broker {backlog['broker_cpu_us_per_line']})  "
                f"{backlog['in_kafka']:,} of {backlog['lines']:,} lines in Kafka",
                flush=True,
            )
            backlogs.append(backlog)
        return {
            **row,
            "runs": off_runs + on_runs,
            "ingest_off_msgs_per_s": off,
            "ingest_on_msgs_per_s": on,
            "ingest_on_vs_off": round(on / off, 3),
            "backlog": backlogs,
            "forward_vs_ingest": {b["format"]: round(b["lines_per_s"] / off, 3) for b in backlogs},
            "verified": all(r["verified"] for r in off_runs + on_runs)
            and all(b["complete"] and b["in_kafka"] >= b["lines"] for b in backlogs),
        }
    finally:
        broker.stop()
        shutil.rmtree(broker_dir, ignore_errors=True)
