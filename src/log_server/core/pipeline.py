"""The bounded queue between the sources and the writer.

Sources submit records; the pipeline stamps each with the next sequence number and
formats it into its line at once, so lines sit in the queue in sequence order and the
writer only has to write them as they come. The queue is bounded in bytes: past the
bound every producer is paused (TCP stops reading, so the kernel pushes back on the
senders) until the writer has caught up to half of it. Nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Sequence
from typing import Protocol

from log_server.core.clock import now_iso
from log_server.core.format import LineFormatter
from log_server.core.records import LogRecord
from log_server.core.sequencer import Sequencer


class FlowControlled(Protocol):
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class LogPipeline:
    def __init__(self, sequencer: Sequencer, formatter: LineFormatter, max_queue_bytes: int):
        self.sequencer = sequencer
        self.max_queue_bytes = max_queue_bytes
        self._format = formatter
        self._chunks: list[bytes] = []
        self._chunk_lines: list[int] = []
        self._pending_lines = 0
        self._pending_bytes = 0
        self._inflight_bytes = 0
        self._data_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._producers: set[FlowControlled] = set()
        self._idle_writer: Callable[[], None] | None = None
        self.received = 0
        self.written = 0
        self.closed = False
        # Lines are numbered without gaps and written in order, so the last written number
        # is where the sequence stood at start plus the lines written since.
        self._first_seq_base = sequencer.last_issued
        self.durable_seq = sequencer.last_issued
        self._durable_listeners: list[Callable[[int], None]] = []
        self._durable_waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap

    # -- producer side -------------------------------------------------------------------

    def submit(self, records: Sequence[LogRecord], received_at: str | None = None) -> None:
        """Accept records: from here on they will be written, in this order."""
        if not records:
            return
        if received_at is None:
            received_at = now_iso()
        fmt = self._format
        seqs = self.sequencer.take(len(records))
        text = "".join([fmt(seq, r, received_at) for seq, r in zip(seqs, records, strict=True)])
        self._accept(text.encode("utf-8", "backslashreplace"), len(records))

    @property
    def next_seq(self) -> int:
        """The number the next accepted message gets (for decoders that format lines)."""
        return self.sequencer.last_issued + 1

    def submit_formatted(self, lines: bytes, count: int) -> None:
        """Accept `count` lines that a decoder already formatted, numbered from `next_seq`."""
        if count:
            self.sequencer.take(count)
            self._accept(lines, count)

    def _accept(self, chunk: bytes, count: int) -> None:
        self._chunks.append(chunk)
        self._chunk_lines.append(count)
        self._pending_lines += count
        self._pending_bytes += len(chunk)
        self.received += count
        if self._idle_writer is not None and len(self._chunks) == 1 and not self._inflight_bytes:
            self._idle_writer()
            if not self._chunks:
                return
        self._data_ready.set()
        if self._room.is_set() and self.queued_bytes >= self.max_queue_bytes:
            self._room.clear()
            for producer in list(self._producers):
                producer.pause_reading()

    def register(self, producer: FlowControlled) -> None:
        self._producers.add(producer)
        if not self._room.is_set():
            producer.pause_reading()

    def unregister(self, producer: FlowControlled) -> None:
        self._producers.discard(producer)

    @property
    def has_room(self) -> bool:
        return self._room.is_set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    # -- writer side ---------------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        """Accepted but not yet written: waiting lines plus the batch being written."""
        return self._pending_bytes + self._inflight_bytes

    @property
    def queued_lines(self) -> int:
        return self.received - self.written

    @property
    def has_waiting_lines(self) -> bool:
        return bool(self._chunks)

    async def wait_for_data(self) -> None:
        await self._data_ready.wait()

    def set_idle_writer(self, write: Callable[[], None] | None) -> None:
        """`write()` is called when lines arrive while nothing is queued or being written,
        so that they can be written there and then instead of waking the writer's task."""
        self._idle_writer = write

    def put_back(self, chunks: list[bytes], count: int, taken_bytes: int) -> None:
        """A batch of `count` lines (`taken_bytes` when taken) that could not be written at
        once: `chunks` is the part not yet in the file, first in line again."""
        self._chunks[:0] = chunks
        self._chunk_lines[:0] = [count] + [0] * (len(chunks) - 1)
        self._pending_lines += count
        self._pending_bytes += sum(map(len, chunks))
        self._inflight_bytes -= taken_bytes
        self._data_ready.set()

    def take(self, max_bytes: int) -> tuple[list[bytes], int]:
        """The oldest waiting lines, in sequence order, as one batch of about `max_bytes`
        (at least one submitted chunk): (the chunks, how many lines). The chunks are not
        joined here: the writer hands them to the kernel as they are, off the loop thread."""
        chunks, counts = self._chunks, self._chunk_lines
        size = taken = 0
        while taken < len(chunks) and (taken == 0 or size + len(chunks[taken]) <= max_bytes):
            size += len(chunks[taken])
            taken += 1
        batch, count = chunks[:taken], sum(counts[:taken])
        del chunks[:taken], counts[:taken]
        self._pending_lines -= count
        self._pending_bytes -= size
        self._inflight_bytes += size
        if not chunks:
            self._data_ready.clear()
        return batch, count

    def mark_written(self, count: int, size: int) -> None:
        self.written += count
        self._inflight_bytes -= size
        if not self._room.is_set() and self.queued_bytes <= self.max_queue_bytes // 2:
            self._room.set()
            for producer in list(self._producers):
                producer.resume_reading()

    @property
    def written_seq(self) -> int:
        """The sequence number of the last line written (to the OS, not yet fsynced)."""
        return self._first_seq_base + self.written

    def add_durable_listener(self, listener: Callable[[int], None]) -> None:
        self._durable_listeners.append(listener)

    def remove_durable_listener(self, listener: Callable[[int], None]) -> None:
        self._durable_listeners.remove(listener)

    def mark_durable(self, seq: int) -> None:
        """Lines up to `seq` are on disk as far as --fsync promises; acknowledgements go out."""
        if seq > self.durable_seq:
            self.durable_seq = seq
            for listener in list(self._durable_listeners):
                listener(seq)
            waiters = self._durable_waiters
            while waiters and waiters[0][0] <= seq:
                future = heapq.heappop(waiters)[2]
                if not future.done():
                    future.set_result(None)

    async def wait_durable(self, seq: int) -> None:
        """Until the line numbered `seq` is on disk as far as --fsync promises."""
        if seq <= self.durable_seq:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._durable_waiters, (seq, id(future), future))
        await future

    def close(self) -> None:
        """No more batches after the waiting lines; wakes the writer so it can finish."""
        self.closed = True
        self._data_ready.set()
