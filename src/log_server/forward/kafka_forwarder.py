"""One `--forward kafka://...` target: a thread that follows the written files from the
checkpoint and produces one Kafka record per line, in sequence order.

It runs beside the writer and never touches the pipeline: intake never waits for Kafka.
librdkafka (confluent-kafka) batches, retries and reconnects on its own threads; with the
idempotent producer (acks=all) retries neither reorder nor duplicate records within one
partition, and records never time out (`message.timeout.ms=0`): while Kafka is away they
wait in the producer's bounded queue, and past that bound the lines wait in the files.

The checkpoint is saved only up to the last line such that it and every line before it were
acknowledged (partitions acknowledge independently). A failure that librdkafka does not
retry by itself ends the producer: a new one starts again from the checkpoint after a
backoff, so the records after the checkpoint may reach Kafka twice (at-least-once).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from log_server.events import ServerEvents
from log_server.forward.checkpoint import Checkpoint
from log_server.forward.lag import LagClock
from log_server.forward.record import record_of
from log_server.forward.target import KafkaTarget
from log_server.history.follower import LogFollower, LogLine

BATCH_LINES = 5_000
IDLE_POLL_S = 0.05
SAVE_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0
# librdkafka's queue of records not yet acknowledged; past it, reading the files pauses.
QUEUE_MESSAGES = 100_000
QUEUE_KBYTES = 64 * 1024


class _SessionFailed(Exception):
    pass


class _Batch:
    """Lines read together: acknowledged when every one of them is."""

    __slots__ = ("last_seq", "outstanding")

    def __init__(self, last_seq: int, outstanding: int) -> None:
        self.last_seq = last_seq
        self.outstanding = outstanding


class KafkaForwarder:
    def __init__(
        self,
        target: KafkaTarget,
        log_dir: Path,
        server_name: str,
        written_seq: Callable[[], int],
        events: ServerEvents,
        call_soon: Callable[..., object],
    ) -> None:
        """Reads the checkpoint at once (CheckpointError when it is unreadable)."""
        self.target = target
        self.log_dir = log_dir
        self.server_name = server_name
        self._written_seq = written_seq
        self._events = events
        self._call_soon = call_soon
        self.checkpoint = Checkpoint(log_dir / target.checkpoint_name, target.url)
        saved = self.checkpoint.load()
        written = written_seq()
        self._resumed_from = saved
        self._replaced = saved is not None and saved > written
        # Without a checkpoint (or past the files' last line: they were replaced) forwarding
        # starts at the oldest line kept; lines rotated away before then were never its own.
        self.acked_seq = 0 if saved is None or self._replaced else saved
        self._saved_seq = self.acked_seq
        self._fresh = self.acked_seq == 0
        self._clock = LagClock()
        self._behind_since: float | None = None
        self._stop_at: float | None = None
        self._stop_requested = threading.Event()
        self._failure: str | None = None
        self._unreachable_since: float | None = None
        self._closing = False
        self._thread = threading.Thread(
            target=self._run, name=f"forward {target.topic}", daemon=True
        )

    def start(self) -> None:
        if self._replaced:
            reason = (
                f"checkpoint {self._resumed_from} is past the files' last line "
                f"{self._written_seq()} (the files were replaced)"
            )
        elif self._resumed_from is None:
            reason = "no checkpoint yet"
        else:
            reason = f"checkpoint {self.checkpoint.path.name}"
        self._events.forward_started(self.target.url, self.acked_seq + 1, reason)
        self._thread.start()

    def lag(self) -> tuple[int, float]:
        """(lines written but not acknowledged by Kafka, seconds the oldest of them waits)."""
        lines = max(0, self._written_seq() - self.acked_seq)
        since = self._behind_since
        if not lines or since is None:
            return lines, 0.0
        return lines, max(0.0, time.monotonic() - since)

    def stop(self, grace_s: float) -> None:
        """Forward what is written for up to `grace_s` more, save the checkpoint, end.
        Blocks: call it off the event loop."""
        self._stop_at = time.monotonic() + grace_s
        self._stop_requested.set()
        self._thread.join(grace_s + 10.0)

    def _report(self, event: Callable[..., None], *args: object) -> None:
        self._call_soon(event, self.target.url, *args)

    def _run(self) -> None:
        failures = 0
        while True:
            try:
                self._forward()
                return
            except Exception as exc:  # a failed session: start again from the checkpoint
                failures += 1
                reason = str(exc) if isinstance(exc, _SessionFailed) else repr(exc)
                delay = min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
                self._report(self._events.forward_failed, reason, self.acked_seq + 1, delay)
                if self._stop_requested.wait(delay):
                    return

    def _producer(self) -> Producer:
        target = self.target
        idempotent = target.acks == "all"
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(target.bootstrap),
            "client.id": f"log_server-{self.server_name}",
            "acks": target.acks,
            "enable.idempotence": idempotent,
            # Order within a partition across retries: the idempotent producer keeps it
            # with up to 5 requests in flight; without it, only one may be.
            "max.in.flight.requests.per.connection": 5 if idempotent else 1,
            "compression.type": target.compression,
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "message.timeout.ms": 0,
            "queue.buffering.max.messages": QUEUE_MESSAGES,
            "queue.buffering.max.kbytes": QUEUE_KBYTES,
            "reconnect.backoff.max.ms": 2_000,
            # The Java client's partitioner: a key lands where other Kafka clients put it.
            "partitioner": "murmur2_random",
            "error_cb": self._on_error,
            "log_level": 0,  # errors come through error_cb, as server events
        }
        return Producer(config)

    def _forward(self) -> None:
        producer = self._producer()
        follower = LogFollower(self.log_dir, self.acked_seq)
        inflight: deque[_Batch] = deque()
        next_seq = self.acked_seq + 1
        self._failure = None
        self._closing = False
        last_save = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                written = self._written_seq()
                self._clock.written(written, now)
                if self._stop_at is not None and (
                    now >= self._stop_at or (not inflight and self.acked_seq >= written)
                ):
                    return
                lines: list[LogLine] = []
                if len(producer) < QUEUE_MESSAGES // 2:
                    lines = follower.read_available(BATCH_LINES)
                if lines:
                    next_seq = self._check_gap(lines, next_seq)
                    inflight.append(self._produce(producer, lines))
                producer.poll(0 if lines else IDLE_POLL_S)
                while inflight and inflight[0].outstanding <= 0:
                    self.acked_seq = inflight.popleft().last_seq
                self._behind_since = self._clock.behind_since(self.acked_seq)
                if self._failure is not None:
                    raise _SessionFailed(self._failure)
                if self.acked_seq > self._saved_seq and (
                    not lines or now - last_save >= SAVE_INTERVAL_S
                ):
                    self._save()
                    last_save = now
        finally:
            self._closing = True
            follower.close()
            self._save()
            producer.purge()
            producer.flush(0)

    def _save(self) -> None:
        if self.acked_seq > self._saved_seq:
            self.checkpoint.save(self.acked_seq)
            self._saved_seq = self.acked_seq

    def _check_gap(self, lines: list[LogLine], next_seq: int) -> int:
        """Report lines that were rotated away before they could be read."""
        first = lines[0].seq
        if first > next_seq and not (self._fresh and next_seq == 1):
            self._report(self._events.forward_gap, next_seq, first - 1)
        self._fresh = False
        previous = first
        for line in lines:
            if line.seq > previous + 1:
                self._report(self._events.forward_gap, previous + 1, line.seq - 1)
            previous = line.seq
        return previous + 1

    def _produce(self, producer: Producer, lines: list[LogLine]) -> _Batch:
        batch = _Batch(lines[-1].seq, len(lines))
        topic = self.target.topic
        by_server = self.target.key == "server"

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                batch.outstanding -= 1
                if self._unreachable_since is not None:
                    self._back(err)
            elif err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                self._skipped(msg.value(), err.str())
                batch.outstanding -= 1
            elif not self._closing:
                self._failure = f"Kafka refused a record: {err.str()}"

        for line in lines:
            hostname, value = record_of(line.raw)
            key = self.server_name if by_server else hostname
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # the producer's queue is full: Kafka is slow or away
                    producer.poll(0.1)
                    if self._stop_at is not None and time.monotonic() >= self._stop_at:
                        return batch  # not all sent: the batch is never acknowledged
                except KafkaException as exc:
                    error = exc.args[0]
                    if error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
                        raise _SessionFailed(f"cannot send a record: {error.str()}") from None
                    self._skipped(value, error.str())
                    batch.outstanding -= 1
                    break
        return batch

    def _skipped(self, value: bytes | None, reason: str) -> None:
        try:
            seq = int(json.loads(value or b"{}").get("seq", 0))
        except ValueError:
            seq = 0
        self._report(self._events.forward_skipped, seq, len(value or b""), reason)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._failure = f"the Kafka producer failed: {err.str()}"
        elif err.code() == KafkaError._ALL_BROKERS_DOWN and self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            self._report(self._events.forward_unreachable, err.str())

    def _back(self, _err: object) -> None:
        since = self._unreachable_since
        self._unreachable_since = None
        if since is not None:
            self._report(self._events.forward_reachable, time.monotonic() - since)
