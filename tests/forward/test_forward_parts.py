"""The forwarder's pure parts: the URL, the checkpoint file, line -> record, the lag clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from log_server.cli import config_from_args
from log_server.core.format import format_json, format_text
from log_server.core.records import Level, LogRecord
from log_server.forward.checkpoint import Checkpoint, CheckpointError
from log_server.forward.kafka_forwarder import KafkaForwarder
from log_server.forward.lag import LagClock
from log_server.forward.record import Records, record_of
from log_server.forward.target import parse_forward_url
from log_server.history.parse import parse_line


def test_url_with_defaults() -> None:
    target = parse_forward_url("kafka://127.0.0.1:9092/logs")
    assert target.bootstrap == ("127.0.0.1:9092",)
    assert (target.topic, target.acks, target.compression, target.key) == (
        "logs",
        "all",
        "lz4",
        "host",
    )


def test_url_with_options_and_several_brokers() -> None:
    target = parse_forward_url(
        "kafka://[::1]:9092,kafka-2.local:9093/app.logs?acks=1&compression=zstd&key=server"
    )
    assert target.bootstrap == ("[::1]:9092", "kafka-2.local:9093")
    assert (target.topic, target.acks, target.compression, target.key) == (
        "app.logs",
        "1",
        "zstd",
        "server",
    )
    assert "/" not in target.checkpoint_name and ":" not in target.checkpoint_name


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://127.0.0.1:9092/logs", "only kafka://"),
        ("kafka://127.0.0.1/logs", "is not HOST:PORT"),
        ("kafka://127.0.0.1:99999/logs", "is not HOST:PORT"),
        ("kafka://127.0.0.1:9092/", "is not a Kafka topic name"),
        ("kafka://127.0.0.1:9092/bad topic", "is not a Kafka topic name"),
        ("kafka://127.0.0.1:9092/a/b", "is not a Kafka topic name"),
        ("kafka://127.0.0.1:9092/logs?acks=0", "acks='0': one of all, 1"),
        ("kafka://127.0.0.1:9092/logs?linger=5", "unknown option 'linger'"),
    ],
)
def test_bad_url_says_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_forward_url(url)


def test_flag_is_repeatable_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    config = config_from_args(
        ["--forward", "kafka://127.0.0.1:9092/a", "--forward", "kafka://127.0.0.1:9092/b"]
    )
    assert [t.topic for t in config.forward] == ["a", "b"]
    assert config_from_args([]).forward == ()
    with pytest.raises(SystemExit):
        config_from_args(
            ["--forward", "kafka://127.0.0.1:9092/a", "--forward", "kafka://127.0.0.1:9092/a"]
        )
    assert (
        "argument --forward: the same brokers and topic are given twice" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        config_from_args(["--forward", "kafka://h/a"])
    assert "argument --forward: 'kafka://h/a': 'h' is not HOST:PORT" in capsys.readouterr().err


def test_checkpoint_round_trip_and_atomic_file(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / ".c.checkpoint", "kafka://x:1/t")
    assert checkpoint.load() is None
    checkpoint.save(41)
    checkpoint.save(42)
    assert checkpoint.load() == 42
    assert json.loads(checkpoint.path.read_text()) == {"seq": 42, "target": "kafka://x:1/t"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.checkpoint"]


@pytest.mark.parametrize("content", [b"", b"{", b'{"seq": "7"}', b'{"seq": -1}', b"[]"])
def test_unreadable_checkpoint_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / ".c.checkpoint"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="remove it to forward again"):
        Checkpoint(path, "kafka://x:1/t").load()


RECORD = LogRecord(
    hostname="web-1",
    logger_name="app",
    level=Level.WARNING,
    filename="main.py",
    function_name="serve",
    line_number="12",
    message='disk "almost" full = 91%\n',
    process_id="77",
    attributes=(("region", "eu west"),),
)


@pytest.mark.parametrize("formatter", [format_text, format_json])
def test_record_is_the_lines_fields_keyed_by_hostname(formatter: object) -> None:
    raw = formatter(9, RECORD, "2026-12-07T12:00:00.000000Z").encode()  # type: ignore[operator]
    hostname, value = record_of(raw)
    fields = json.loads(value)
    assert hostname == "web-1"
    assert fields == parse_line(raw)
    assert fields["seq"] == 9
    assert fields["message"] == 'disk "almost" full = 91%\n'
    assert fields["level"] == "WARNING"
    assert fields["attributes"] == {"region": "eu west"}


def test_json_record_with_escaped_hostname() -> None:
    record = LogRecord(hostname='we"b', message="m")
    raw = format_json(3, record, "2026-12-07T12:00:00.000000Z").encode()
    assert record_of(raw)[0] == 'we"b'


def test_lag_clock_is_the_age_of_the_oldest_unacknowledged_line() -> None:
    clock = LagClock()
    assert clock.behind_since(0) is None
    clock.written(10, now=100.0)
    clock.written(10, now=101.0)  # nothing new: no sample
    clock.written(20, now=102.0)
    assert clock.behind_since(5) == 100.0
    assert clock.behind_since(10) == 102.0
    assert clock.behind_since(20) is None


def test_lag_clock_bounded_keeps_the_oldest_sample() -> None:
    clock = LagClock(max_samples=3)
    for i in range(1, 100):
        clock.written(i, now=float(i))
    assert clock.behind_since(0) == 1.0
    assert clock.behind_since(50) == 98.0  # thinned: by then at the latest


class _RefusingProducer:
    """Refuses each record in `full` once, as librdkafka does when its queue is full."""

    def __init__(self, full: set[bytes]) -> None:
        self.full = full
        self.taken: list[tuple[str, bytes, str]] = []

    def produce(self, topic: str, value: bytes, key: str) -> None:
        if value in self.full:
            self.full.discard(value)
            raise BufferError("Local: Queue full")
        self.taken.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        return 0


@pytest.mark.parametrize("refused", [set(), {b"v0"}, {b"v3", b"v4"}, {b"v9"}])
def test_records_refused_by_a_full_queue_are_produced_again_in_order(
    tmp_path: Path, refused: set[bytes]
) -> None:
    target = parse_forward_url("kafka://127.0.0.1:9/logs")
    forwarder = KafkaForwarder(target, tmp_path, "srv", 0, True, lambda *args: None)
    values = [b"v%d" % i for i in range(10)]
    hosts = [f"h{i}" for i in range(10)]
    producer = _RefusingProducer(set(refused))
    forwarder._produce(producer, Records(1, 10, hosts, values, []))  # type: ignore[arg-type]
    assert producer.taken == [("logs", v, h) for v, h in zip(values, hosts, strict=True)]
    assert not producer.full
