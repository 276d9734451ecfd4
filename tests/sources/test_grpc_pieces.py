"""LogServiceHandler on a real pipeline, without a network: a large LogBatch is queued a
bounded piece at a time with the event loop free in between (issue 14 item 8)."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

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
