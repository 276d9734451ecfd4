"""The single writer: drains the pipeline into the file sink, one write call per batch,
retrying failures until they succeed.

The write system call itself runs on one helper thread (except for small batches, see
INLINE_WRITE_BYTES). Copying a batch into the page cache is about a fifth of the work per
message; on its own thread (os.write releases the GIL) it overlaps with decoding the next
batch on the event loop, and a slow disk never stalls the loop. There is still only one
batch in flight, so order is kept. The hand-off costs one thread wake-up per batch, not per
message. With --fsync batch the fsync runs there too, after each write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.health import Health
from log_server.sinks.log_directory import SymlinkRefused
from log_server.sinks.retry import RetryPolicy
from log_server.sinks.rotating_file import RotatingFileSink, SinkWriteError

# Bytes per write call at most: large enough that the writer drains in one call what a loop
# iteration can read (four connections of 256 KiB reads, with room to catch up), so the queue
# stays short under full load; the chunks go to one writev without being joined.
BATCH_BYTES = 4 * 1024 * 1024
# A batch this small is written on the loop thread itself: the hand-off to the writer thread
# (two wake-ups, ~60 µs here) would cost more than the write. At low load, as with unary
# gRPC calls, every message is such a batch.
INLINE_WRITE_BYTES = 16 * 1024


class BatchWriter:
    """Writes in sequence order because it takes lines in the order the pipeline stamped
    them and has only one batch in flight.

    Batches size themselves (group commit): a line that comes while the writer is idle is
    written at once, in the same callback that read it (`_write_at_once`); whatever comes
    while a write is in flight waits for it and goes out together in the next. There is no
    timer on the path of a lone line: at low load a line is on disk a fraction of a
    millisecond after it arrives, and under load batches grow to BATCH_BYTES by themselves."""

    def __init__(
        self,
        pipeline: LogPipeline,
        sink: RotatingFileSink,
        events: ServerEvents,
        health: Health,
        policy: RetryPolicy | None = None,
        fsync: str = "never",
        fsync_interval_s: float = 1.0,
        observe_write: Callable[[float], None] | None = None,
    ) -> None:
        """`observe_write(seconds)`, if given, hears how long each successful write call
        took (with its fsync under --fsync batch): the /metrics latency histogram."""
        self.pipeline = pipeline
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.sink = sink
        self.events = events
        self.health = health
        self.policy = policy or RetryPolicy()
        self.bytes_written = 0
        self.failed_writes = 0
        self.observe_write = observe_write
        self.last_write_at = time.monotonic()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-writer")
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        """Until the pipeline is closed and empty."""
        pipeline = self.pipeline
        self._loop = asyncio.get_running_loop()
        if self.fsync != "batch":  # an fsync is too slow for the loop thread
            pipeline.set_idle_writer(self._write_at_once)
        try:
            while True:
                if not pipeline.has_waiting_lines:
                    if pipeline.closed:
                        self._thread.shutdown()
                        return
                    await pipeline.wait_for_data()
                    continue
                chunks, count = pipeline.take(BATCH_BYTES)
                size = sum(map(len, chunks))
                await self._write(chunks, size)
                self._written(count, size)
                if self.fsync != "interval":  # "batch": _write_once has fsynced already
                    pipeline.mark_durable(pipeline.written_seq)
        finally:
            pipeline.set_idle_writer(None)

    def _write_at_once(self) -> None:
        """Lines that came to an idle writer: written now, on the loop thread, when they
        are few. Any failure hands what is left to the writer's task, whose retries report
        it; acknowledgements go out in the next loop iteration, after the source that
        submitted the lines has counted them."""
        pipeline = self.pipeline
        if pipeline.queued_bytes > INLINE_WRITE_BYTES:
            return
        chunks, count = pipeline.take(BATCH_BYTES)
        size = sum(map(len, chunks))
        observe = self.observe_write
        started = time.perf_counter() if observe is not None else 0.0
        try:
            self.sink.write_chunks(chunks)
        except SinkWriteError as exc:
            self.failed_writes += 1
            self.bytes_written += exc.written
            pipeline.put_back([b"".join(chunks)[exc.written :]], count, size)
            return
        except OSError:
            self.failed_writes += 1
            pipeline.put_back(chunks, count, size)
            return
        if observe is not None:
            observe(time.perf_counter() - started)
        self._written(count, size)
        if self.fsync == "never":
            assert self._loop is not None
            self._loop.call_soon(pipeline.mark_durable, pipeline.written_seq)

    def _written(self, count: int, size: int) -> None:
        self.bytes_written += size
        self.last_write_at = time.monotonic()
        self.pipeline.mark_written(count, size)

    async def _write(self, chunks: list[bytes], size: int) -> None:
        """Until all of the batch is in the file; a partial write is resumed where it stopped."""
        loop = asyncio.get_running_loop()
        failures = 0
        first_failure = 0.0
        while True:
            try:
                if size <= INLINE_WRITE_BYTES and not failures and self.fsync != "batch":
                    self._write_once(chunks, False)
                else:
                    await loop.run_in_executor(self._thread, self._write_once, chunks, failures > 0)
                break
            except (SinkWriteError, OSError) as exc:
                self.failed_writes += 1
                if isinstance(exc, SinkWriteError):
                    chunks = [b"".join(chunks)[exc.written :]]
                    cause = exc.cause
                else:
                    cause = exc
                failures += 1
                if failures == 1:
                    first_failure = time.monotonic()
                reason = f"{self.sink.path}: {cause.strerror or cause}"
                if isinstance(cause, SymlinkRefused):
                    # Not a passing fault: said once, DEGRADED at once; the queue keeps the
                    # lines until the link is gone.
                    reason = f"{cause.filename}: {cause.strerror}"
                    if failures == 1:
                        self.health.set_degraded(reason)
                        self.events.file_refused(reason)
                elif failures < self.policy.attempts_before_degraded:
                    self.events.write_failed(failures, reason)
                elif failures == self.policy.attempts_before_degraded:
                    self.health.set_degraded(reason)
                    self.events.writes_degraded(failures, reason)
                await asyncio.sleep(self.policy.delay_s(failures))
        if failures:
            self.events.write_recovered(failures, time.monotonic() - first_failure)
            self.health.set_ok()

    def _write_once(self, chunks: list[bytes], reopen: bool) -> None:
        """On the writer thread (or the loop thread, for a small batch without fsync)."""
        observe = self.observe_write
        started = time.perf_counter() if observe is not None else 0.0
        if reopen:
            self.sink.reopen()
        self.sink.write_chunks(chunks)
        if self.fsync == "batch":
            try:
                self.sink.fsync()
            except OSError as exc:
                # Written, not synced: the retry must sync again, not write the lines again.
                raise SinkWriteError(sum(map(len, chunks)), exc) from exc
        if observe is not None:
            observe(time.perf_counter() - started)

    async def sync_periodically(self) -> None:
        """--fsync interval: fsync on the writer thread every interval, then acknowledge."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.fsync_interval_s)
            seq = self.pipeline.written_seq
            if seq > self.pipeline.durable_seq:
                try:
                    await loop.run_in_executor(self._thread, self.sink.fsync)
                except OSError:
                    continue  # the write path reports disk trouble; acks wait
                self.pipeline.mark_durable(seq)
