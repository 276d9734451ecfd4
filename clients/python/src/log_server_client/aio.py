"""AsyncLogClient: for asyncio programs. log() never awaits; a task sends in batches."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Literal

from log_server_client.encoding import Attributes, FrameEncoder, Level, message_fields, to_level
from log_server_client.sender import QueueFullError


class AsyncLogClient:
    """Policy when the queue is full: "raise" (QueueFullError, the default: never silent) or
    "drop" (counted in `dropped`). Reconnects with exponential backoff; a batch that failed
    is sent again after reconnecting."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4020,
        *,
        queue_size: int = 100_000,
        on_full: Literal["raise", "drop"] = "raise",
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
        logger_name: str = "",
        service_name: str = "",
    ) -> None:
        self.host, self.port = host, port
        self.queue_size = queue_size
        self.on_full = on_full
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.logger_name = logger_name
        self.service_name = service_name
        self.dropped = 0
        self.last_error: BaseException | None = None
        self._encoder = FrameEncoder()
        self._queue: collections.deque[bytes] = collections.deque()
        self._inflight = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    def log(
        self,
        level: Level | int | str,
        message: str,
        *,
        attributes: Attributes | None = None,
        **fields: Any,
    ) -> bool:
        if len(self._queue) >= self.queue_size:
            if self.on_full == "drop":
                self.dropped += 1
                return False
            raise QueueFullError(
                f"{self.queue_size} messages waiting for the log server "
                f"(last error: {self.last_error})"
            )
        values = message_fields(self.logger_name, self.service_name, fields)
        self._queue.append(self._encoder.encode(to_level(level), str(message), values, attributes))
        self._idle.clear()
        self._ready.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def flush(self, timeout_s: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float | None = 10.0) -> bool:
        delivered = await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._disconnect()
        return delivered

    async def __aenter__(self) -> AsyncLogClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self) -> None:
        delay = self.reconnect_initial_s
        while True:
            await self._ready.wait()
            batch = list(self._queue)
            self._queue.clear()
            self._ready.clear()
            self._inflight = len(batch)
            while True:
                try:
                    if self._writer is None:
                        _, self._writer = await asyncio.open_connection(self.host, self.port)
                        delay = self.reconnect_initial_s
                    self._writer.write(b"".join(batch))
                    await self._writer.drain()
                    break
                except OSError as exc:
                    self.last_error = exc
                    await self._disconnect()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.reconnect_max_s)
            self._inflight = 0
            if not self._queue:
                self._idle.set()

    async def _disconnect(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
