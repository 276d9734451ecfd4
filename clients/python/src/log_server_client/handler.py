"""LogServerHandler: a logging.Handler that sends each record to the log server."""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from typing import Any

from log_server_client.client import LogClient
from log_server_client.encoding import FrameEncoder, Level
from log_server_client.sender import OnFull

_HOSTNAME = socket.gethostname()
# logging's numbers -> the server's levels; other numbers go to the nearest of these (a tie
# goes to the more severe one).
_LEVELS = {
    0: Level.NOTSET,
    10: Level.DEBUG,
    20: Level.INFO,
    30: Level.WARNING,
    40: Level.ERROR,
    50: Level.CRITICAL,
}
_formatter = logging.Formatter()


def to_server_level(levelno: int) -> Level:
    if levelno in _LEVELS:
        return _LEVELS[levelno]
    nearest = min(_LEVELS, key=lambda known: (abs(known - levelno), -known))
    return _LEVELS[nearest]


class LogServerHandler(logging.Handler):
    """Maps a LogRecord onto LoggerMsg and queues it on a LogClient; emitting never raises
    into the application (failures go through `handleError`). Usable from dictConfig:
    `{"class": "log_server_client.LogServerHandler", "host": ..., "port": ...}`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4020,
        service_name: str | None = None,
        level: int = logging.NOTSET,
        *,
        queue_size: int = 100_000,
        on_full: OnFull = "block",
        block_timeout_s: float | None = None,
    ) -> None:
        super().__init__(level)
        self.service_name = service_name or ""
        self.client = LogClient(
            host, port, queue_size=queue_size, on_full=on_full, block_timeout_s=block_timeout_s
        )
        self._encoder = FrameEncoder()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            frame = self._encoder.encode_values(
                to_server_level(record.levelno), record.getMessage(), self.values(record)
            )
            self.client.send_frame(frame)
        except Exception:
            self.handleError(record)

    def values(self, record: logging.LogRecord) -> tuple[tuple[str, Any], ...]:
        """(Cap'n Proto field, value) pairs of a record: the hot path of every log call."""
        has_stack = record.exc_info or record.exc_text or record.stack_info
        return (
            ("timestamp", _iso_utc(record.created)),
            ("hostname", _HOSTNAME),
            ("loggerName", record.name),
            ("module", record.module),
            ("filename", record.filename),
            ("functionName", record.funcName),
            ("lineNumber", record.lineno),
            ("pathName", record.pathname),
            ("processId", record.process if record.process is not None else os.getpid()),
            ("processName", record.processName),
            ("threadId", record.thread),
            ("threadName", record.threadName),
            ("serviceName", self.service_name),
            ("stackTrace", _stack_trace(record) if has_stack else ""),
        )

    def flush(self) -> None:
        self.client.flush(timeout_s=10.0)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            super().close()


def _stack_trace(record: logging.LogRecord) -> str:
    stack = ""
    if record.exc_info:
        stack = _formatter.formatException(record.exc_info)
    elif record.exc_text:
        stack = record.exc_text
    if record.stack_info:
        stack = f"{stack}\n{record.stack_info}" if stack else record.stack_info
    return stack


def _iso_utc(created: float) -> str:
    """record.created as ISO-8601 UTC with microseconds, without a datetime per record."""
    seconds = int(created)
    micros = int(round((created - seconds) * 1e6))
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return f"{_utc_prefix(seconds)}.{micros:06d}+00:00"


@functools.lru_cache(maxsize=4)
def _utc_prefix(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
