"""LogPipeline: sequence order, byte bound with pause/resume of producers."""

from __future__ import annotations

import asyncio

from log_server.core.pipeline import LogPipeline
from log_server.core.records import LogRecord
from log_server.core.sequencer import Sequencer


def plain(seq: int, record: LogRecord, received_at: str) -> str:
    return f"{seq} {record.message}\n"


class Producer:
    def __init__(self) -> None:
        self.paused = False
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.paused = True
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.paused = False
        self.calls.append("resume")


def test_lines_come_out_in_sequence_order_across_submits() -> None:
    pipeline = LogPipeline(Sequencer(10), plain, max_queue_bytes=1 << 20)
    pipeline.submit([LogRecord(message="a"), LogRecord(message="b")])
    pipeline.submit([LogRecord(message="c")])
    assert pipeline.next_seq == 14
    pipeline.submit_formatted(b"14 pre\n15 formatted\n", 2)
    pipeline.submit([LogRecord(message="d")])
    chunks, count = pipeline.take(1 << 20)
    assert chunks == [b"11 a\n12 b\n", b"13 c\n", b"14 pre\n15 formatted\n", b"16 d\n"]
    assert count == 6
    assert pipeline.take(1 << 20) == ([], 0)
    assert pipeline.received == 6 and pipeline.queued_lines == 6


def test_take_returns_batches_of_about_max_bytes_in_order() -> None:
    pipeline = LogPipeline(Sequencer(), plain, max_queue_bytes=1 << 20)
    for letter in "abcde":
        pipeline.submit([LogRecord(message=letter * 8)])  # 11 bytes a chunk
    assert pipeline.take(25) == ([b"1 aaaaaaaa\n", b"2 bbbbbbbb\n"], 2)
    assert pipeline.take(5) == ([b"3 cccccccc\n"], 1), "at least one chunk"
    assert pipeline.take(100) == ([b"4 dddddddd\n", b"5 eeeeeeee\n"], 2)
    assert not pipeline.has_waiting_lines and pipeline.queued_bytes == 55


def test_producers_pause_at_the_bound_and_resume_at_half() -> None:
    pipeline = LogPipeline(Sequencer(), plain, max_queue_bytes=100)
    producer = Producer()
    pipeline.register(producer)
    pipeline.submit([LogRecord(message="x" * 96)])  # "1 " + 96 + "\n" = 99 bytes
    assert not producer.paused and pipeline.has_room
    pipeline.submit([LogRecord(message="y")])
    assert producer.paused and not pipeline.has_room
    late = Producer()
    pipeline.register(late)
    assert late.paused
    batch, count = pipeline.take(1 << 20)
    assert producer.paused, "the batch in flight still counts until it is written"
    pipeline.mark_written(count, sum(map(len, batch)))
    assert not producer.paused and not late.paused and pipeline.has_room
    assert producer.calls == ["pause", "resume"]
    assert pipeline.queued_bytes == 0 and pipeline.written == 2


def test_wait_for_data_wakes_on_submit_and_on_close() -> None:
    async def scenario() -> tuple[list[bytes], int]:
        pipeline = LogPipeline(Sequencer(), plain, max_queue_bytes=1000)
        waiter = asyncio.create_task(pipeline.wait_for_data())
        await asyncio.sleep(0)
        assert not waiter.done()
        pipeline.submit([LogRecord(message="m")])
        await asyncio.wait_for(waiter, 1)
        lines = pipeline.take(1 << 20)
        closing = asyncio.create_task(pipeline.wait_for_data())
        pipeline.close()
        await asyncio.wait_for(closing, 1)
        return lines

    assert asyncio.run(scenario()) == ([b"1 m\n"], 1)
