"""The single writer: drains the pipeline into the file sink, one write call per batch,
retrying failures until they succeed."""

from __future__ import annotations

import asyncio
import time

from log_server.core.pipeline import LogPipeline
from log_server.events import ServerEvents
from log_server.health import Health
from log_server.sinks.retry import RetryPolicy
from log_server.sinks.rotating_file import RotatingFileSink, SinkWriteError


class BatchWriter:
    """Writes in sequence order because it takes lines in the order the pipeline stamped
    them and has only one batch in flight."""

    def __init__(
        self,
        pipeline: LogPipeline,
        sink: RotatingFileSink,
        events: ServerEvents,
        health: Health,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.events = events
        self.health = health
        self.policy = policy or RetryPolicy()
        self.bytes_written = 0

    async def run(self) -> None:
        """Until the pipeline is closed and empty."""
        pipeline = self.pipeline
        while True:
            if not pipeline.has_waiting_lines:
                if pipeline.closed:
                    return
                await pipeline.wait_for_data()
                continue
            data, count = pipeline.take()
            await self._write(data)
            self.bytes_written += len(data)
            pipeline.mark_written(count, len(data))
            # Let the sources run between batches, so batches grow under load.
            await asyncio.sleep(0)

    async def _write(self, data: bytes) -> None:
        """Until all of `data` is in the file; a partial write is resumed where it stopped."""
        failures = 0
        first_failure = 0.0
        while True:
            try:
                if failures:
                    self.sink.reopen()
                self.sink.write(data)
                break
            except (SinkWriteError, OSError) as exc:
                if isinstance(exc, SinkWriteError):
                    data = data[exc.written :]
                    cause = exc.cause
                else:
                    cause = exc
                failures += 1
                if failures == 1:
                    first_failure = time.monotonic()
                reason = f"{self.sink.path}: {cause.strerror or cause}"
                if failures < self.policy.attempts_before_degraded:
                    self.events.write_failed(failures, reason)
                elif failures == self.policy.attempts_before_degraded:
                    self.health.set_degraded(reason)
                    self.events.writes_degraded(failures, reason)
                await asyncio.sleep(self.policy.delay_s(failures))
        if failures:
            self.events.write_recovered(failures, time.monotonic() - first_failure)
            self.health.set_ok()
