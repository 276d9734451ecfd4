"""LogServiceHandler on a real pipeline, without a network: a large LogBatch is queued a
bounded piece at a time with the event loop free in between (issue 14 item 8), and calls
that wait for room are admitted one at a time, with bounded memory (item 9). The
orderings that matter happen inside one loop iteration."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import grpc

from log_server.core.format import FORMATTERS
from log_server.core.pipeline import LogPipeline
from log_server.core.sequencer import Sequencer
from log_server.events import ServerEvents
from log_server.generated import log_service_pb2 as pb
from log_server.protocol.connection import native_decoder_available
from log_server.protocol.proto_codec import PIECE_ENTRIES, batch_decoder
from log_server.sources.grpc import LogServiceHandler


class Aborted(Exception):
    pass


class CallContext:
    """What the handler asks of grpc.aio's ServicerContext."""

    def __init__(self) -> None:
        self.status: tuple[Any, str] | None = None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def time_remaining(self) -> float | None:
        return None

    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, code: Any, details: str) -> NoReturn:
        self.status = (code, details)
        raise Aborted(details)


def new_handler(max_queue_bytes: int) -> tuple[LogPipeline, LogServiceHandler]:
    pipeline = LogPipeline(Sequencer(), FORMATTERS["text"], max_queue_bytes)
    handler = LogServiceHandler(
        pipeline,
        ServerEvents("test", pipeline),
        batch_decoder(native_decoder_available(), "text"),
    )
    return pipeline, handler


def batch_of(count: int, text: str) -> bytes:
    requests = [pb.LogRequest(message=f"{text} {i}") for i in range(count)]
    return pb.LogBatchRequest(requests=requests).SerializeToString()


def write_all(pipeline: LogPipeline) -> None:
    while pipeline.has_waiting_lines:
        chunks, count = pipeline.take(1 << 30)
        pipeline.mark_written(count, sum(map(len, chunks)))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_calls_woken_together_are_admitted_one_at_a_time() -> None:
    """Item 9: calls waiting for room were all let in at once when room came, each with
    its whole request, so the queue went far past its bound."""
    bound = 64 * 1024

    async def main() -> int:
        pipeline, handler = new_handler(bound)
        pipeline.submit_formatted(b"x" * bound + b"\n", 1)
        calls = [
            asyncio.create_task(handler.log_batch(batch_of(100, f"call{n}"), CallContext()))
            for n in range(20)
        ]
        await settle()
        assert not any(call.done() for call in calls), "they wait for room"
        write_all(pipeline)
        await settle()
        queued = pipeline.queued_bytes
        for _ in range(200):
            write_all(pipeline)
            await settle()
        assert all(call.done() and call.exception() is None for call in calls)
        return queued

    queued = asyncio.run(main())
    one_call = 100 * 200  # lines of one call, generously
    assert queued <= bound + one_call, f"{queued} bytes queued past a {bound}-byte bound"


def test_callers_past_the_waiting_budget_are_told_unavailable_at_once() -> None:
    """Item 9: while the queue is full, the requests that wait for room hold at most
    --max_queue_bytes between them; before, every caller waited holding its request."""
    bound = 64 * 1024

    async def main() -> list[Any]:
        pipeline, handler = new_handler(bound)
        pipeline.submit_formatted(b"x" * bound + b"\n", 1)
        request = batch_of(1, "y" * 20_000)
        contexts = [CallContext() for _ in range(5)]
        calls = [asyncio.create_task(handler.log_batch(request, c)) for c in contexts]
        await settle()
        statuses = [c.status[0] if c.status else None for c in contexts]
        write_all(pipeline)
        for _ in range(100):
            await settle()
            write_all(pipeline)
        await asyncio.gather(*calls, return_exceptions=True)
        return statuses

    statuses = asyncio.run(main())
    unavailable = grpc.StatusCode.UNAVAILABLE
    assert statuses == [None, None, None, unavailable, unavailable]


def test_a_large_batch_is_queued_in_pieces_with_the_loop_free_between() -> None:
    entries = 3 * PIECE_ENTRIES + 10
    batch = pb.LogBatchRequest(requests=[pb.LogRequest(message=f"m{i}") for i in range(entries)])

    async def main() -> list[int]:
        pipeline = LogPipeline(Sequencer(), FORMATTERS["text"], 1 << 30)
        handler = LogServiceHandler(
            pipeline,
            ServerEvents("test", pipeline),
            batch_decoder(native_decoder_available(), "text"),
        )
        seen: list[int] = []
        call = asyncio.create_task(handler.log_batch(batch.SerializeToString(), CallContext()))
        while not call.done():
            seen.append(pipeline.received)
            await asyncio.sleep(0)
        await call
        seen.append(pipeline.received)
        return seen

    seen = asyncio.run(main())
    assert seen[-1] == entries
    between = sorted({n for n in seen if 0 < n < entries})
    assert between[:3] == [PIECE_ENTRIES, 2 * PIECE_ENTRIES, 3 * PIECE_ENTRIES], seen
