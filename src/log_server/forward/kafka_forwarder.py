"""The forwarding loop for one `--forward kafka://...` target: follow the written files from
the checkpoint and produce one Kafka record per line, in sequence order.

It runs in its own process (child.py), so it never competes with intake for the server's
interpreter lock. librdkafka (confluent-kafka) batches, retries and reconnects on its own
threads; with the idempotent producer (acks=all) retries neither reorder nor duplicate
records within a partition, and records never time out (`message.timeout.ms=0`): while
Kafka is away they wait in the producer's bounded queue, and past that the lines wait in the
files.

Acknowledgements are counted, not reported one by one (librdkafka reports only failures):
when the producer's queue is empty, every line produced so far is acknowledged. Under steady
load the loop stops reading once a second until it is, so the checkpoint keeps moving. A
failure librdkafka does not retry by itself ends the producer: a new one starts again from
the last acknowledged line after a backoff, so the lines after it may reach Kafka twice
(at-least-once).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import repeat
from operator import length_hint
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from log_server.forward.checkpoint import Checkpoint
from log_server.forward.record import Records, records_of_block
from log_server.forward.target import KafkaTarget
from log_server.history.follower import LogFollower

# About 4,000 lines a read (one read of the follower's).
BATCH_BYTES = 1 << 20
IDLE_POLL_S = 0.05
# While records wait for Kafka: short, as a success raises no event that would end the wait;
# a full queue must not run dry before reading resumes, and the acknowledgement comes sooner.
FULL_POLL_S = 0.005
# A read smaller than this found the end of what is written: the next waits FULL_POLL_S
# (a few MB at full intake) instead of following the writer in small steps, each of them a
# wake-up that takes a core from intake.
FOLLOW_BYTES = BATCH_BYTES // 4
# How often the loop waits for every produced line to be acknowledged, and saves.
ACK_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0
# librdkafka's queue of records not yet acknowledged; past half of it, reading pauses.
QUEUE_MESSAGES = 100_000
QUEUE_KBYTES = 64 * 1024

#: (event name, arguments): gap(first, last), skipped(seq, bytes, reason), unreachable(reason),
#: reachable(seconds), failed(reason, from_seq, delay_s), acked(seq).
Report = Callable[..., None]


class _SessionFailed(Exception):
    pass


class KafkaForwarder:
    def __init__(
        self,
        target: KafkaTarget,
        log_dir: Path,
        server_name: str,
        after_seq: int,
        fresh: bool,
        report: Report,
    ) -> None:
        """`fresh`: no checkpoint yet, so lines rotated away before the first one read are
        not reported as lost (they were never this forwarder's)."""
        self.target = target
        self.log_dir = log_dir
        self.server_name = server_name
        self.checkpoint = Checkpoint(log_dir / target.checkpoint_name, target.url)
        self.acked_seq = after_seq
        self._saved_seq = after_seq
        self._saved_at = 0.0
        self._fresh = fresh
        self._report = report
        self.stop_requested = threading.Event()
        self._stop_at: float | None = None
        self._final_seq = 0
        self._failure: str | None = None
        self._unreachable_since: float | None = None
        self._closing = False

    def stop(self, grace_s: float, final_seq: int) -> None:
        """Go on until `final_seq` is acknowledged, for at most `grace_s`; then end.
        Called from another thread."""
        self._final_seq = final_seq
        self._stop_at = time.monotonic() + grace_s
        self.stop_requested.set()

    def run(self) -> None:
        failures = 0
        while True:
            try:
                self._forward()
                return
            except Exception as exc:  # a failed session: start again from the checkpoint
                if self.stop_requested.is_set():
                    return
                failures += 1
                reason = str(exc) if isinstance(exc, _SessionFailed) else repr(exc)
                delay = min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
                self._report("failed", reason, self.acked_seq + 1, delay)
                if self.stop_requested.wait(delay):
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
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery_failed,
            "error_cb": self._on_error,
            "log_level": 0,  # errors come through error_cb, as server events
        }
        return Producer(config)

    def _forward(self) -> None:
        producer = self._producer()
        follower = LogFollower(self.log_dir, self.acked_seq)
        produced = self.acked_seq  # the last line handed to the producer
        self._failure = None
        self._closing = False
        last_ack = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if self._stop_at is not None and (
                    now >= self._stop_at or self.acked_seq >= self._final_seq
                ):
                    return
                waiting = len(producer)
                read = at_writers_heels = False
                # Read on unless the queue is full, or it is time to let it empty.
                if waiting < QUEUE_MESSAGES // 2 and not (
                    waiting and now - last_ack >= ACK_INTERVAL_S
                ):
                    blocks = follower.read_blocks(BATCH_BYTES)
                    for block in blocks:
                        records = records_of_block(block, produced)
                        if records is not None:
                            self._check_gap(records, produced + 1)
                            self._produce(producer, records)
                            produced = records.last
                            read = True
                    at_writers_heels = read and sum(map(len, blocks)) < FOLLOW_BYTES
                if read and not at_writers_heels:
                    producer.poll(0)
                else:  # records wait for Kafka, or for more to be written
                    producer.poll(FULL_POLL_S if waiting or read else IDLE_POLL_S)
                if self._failure is not None:
                    raise _SessionFailed(self._failure)
                if produced > self.acked_seq and len(producer) == 0:
                    self._acked(produced)
                    last_ack = now
                    if self._unreachable_since is not None:
                        self._back()
                if self.acked_seq > self._saved_seq and (
                    not read or now - self._saved_at >= ACK_INTERVAL_S
                ):
                    self._save()
        finally:
            self._closing = True
            follower.close()
            self._save()
            producer.purge()
            producer.flush(0)

    def _acked(self, seq: int) -> None:
        self.acked_seq = seq
        self._report("acked", seq)

    def _save(self) -> None:
        if self.acked_seq > self._saved_seq:
            self.checkpoint.save(self.acked_seq)
            self._saved_seq = self.acked_seq
            self._saved_at = time.monotonic()

    def _check_gap(self, records: Records, next_seq: int) -> None:
        """Report lines that were rotated away before they could be read: before the block,
        and between its lines."""
        first = records.first
        if first > next_seq and not (self._fresh and next_seq == 1):
            self._report("gap", next_seq, first - 1)
        self._fresh = False
        for gap in records.gaps:
            self._report("gap", *gap)

    def _produce(self, producer: Producer, records: Records) -> None:
        """Hand the records to the producer, in order. `map` calls `produce` with no Python
        step per record; when one is refused, the list iterators tell which (the one before
        what is left), and the rest go on after it."""
        topic = self.target.topic
        keys, values = records.hostnames, records.values
        if self.target.key == "server":
            keys = [self.server_name] * len(keys)
        produce = producer.produce
        key_iter, value_iter = iter(keys), iter(values)
        while True:
            try:
                deque(map(produce, repeat(topic), value_iter, key_iter), maxlen=0)
                return
            except (BufferError, KafkaException):
                refused = len(values) - length_hint(value_iter) - 1
                self._produce_when_taken(producer, topic, keys[refused], values[refused])

    def _produce_when_taken(self, producer: Producer, topic: str, key: str, value: bytes) -> None:
        """One record the producer refused: again while its queue is full; a record too large
        for Kafka is reported and left out."""
        while True:
            try:
                producer.produce(topic, value, key)
                return
            except BufferError:  # the producer's queue is full: Kafka is slow or away
                producer.poll(0.1)
                if self._stop_at is not None and time.monotonic() >= self._stop_at:
                    raise _SessionFailed("stopped while Kafka took no records") from None
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise _SessionFailed(f"cannot send a record: {error.str()}") from None
                self._skipped(value, error.str())
                return

    def _on_delivery_failed(self, err: KafkaError | None, msg: Message) -> None:
        if err is None or self._closing:
            return
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._skipped(msg.value(), err.str())
        else:
            self._failure = f"Kafka refused a record: {err.str()}"

    def _skipped(self, value: bytes | None, reason: str) -> None:
        try:
            seq = int(json.loads(value or b"{}").get("seq", 0))
        except ValueError:
            seq = 0
        self._report("skipped", seq, len(value or b""), reason)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._failure = f"the Kafka producer failed: {err.str()}"
        elif err.code() == KafkaError._ALL_BROKERS_DOWN and self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            self._report("unreachable", err.str())

    def _back(self) -> None:
        since = self._unreachable_since
        self._unreachable_since = None
        if since is not None:
            self._report("reachable", time.monotonic() - since)
