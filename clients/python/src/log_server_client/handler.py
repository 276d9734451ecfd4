"""LogServerHandler: a logging.Handler that sends each record to the log server."""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from typing import Any

from log_server_client.client import LogClient
from log_server_client.encoding import FrameEncoder, Level, attribute_pairs
from log_server_client.sender import ATEXIT_FLUSH_S as EXIT_WAIT_S
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
_LEVEL_NUMBERS = {number: int(level) for number, level in _LEVELS.items() if number}
_formatter = logging.Formatter()
# What every LogRecord has (and what formatters add); any other key came from `extra=`.
_PLAIN_RECORD = logging.LogRecord("", 0, "", 0, "", None, None).__dict__
STANDARD_RECORD_KEYS = frozenset(_PLAIN_RECORD.keys() | {"message", "asctime", "taskName"})
# A record with no more keys than a plain one has no `extra=`: one len() on the hot path.
_PLAIN_RECORD_SIZE = len(_PLAIN_RECORD)


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
        compiled_encoder: bool = True,
        unix_socket: str | None = None,
    ) -> None:
        super().__init__(level)
        self.service_name = service_name or ""
        self.client = LogClient(
            host,
            port,
            queue_size=queue_size,
            on_full=on_full,
            block_timeout_s=block_timeout_s,
            unix_socket=unix_socket,
        )
        self._encoder = FrameEncoder(native=compiled_encoder)
        self._flush_failed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = _LEVEL_NUMBERS.get(record.levelno) or int(to_server_level(record.levelno))
            attributes = (
                self.attributes(record) if len(record.__dict__) > _PLAIN_RECORD_SIZE else ()
            )
            if attributes:
                frame = self._encoder.encode_texts(level, self.texts(record), attributes)
            else:
                frame = self._encoder.encode_texts(level, self.texts(record))
            self.client.send_frame(frame)
        except Exception:
            self.handleError(record)

    @staticmethod
    def attributes(record: logging.LogRecord) -> list[tuple[str, str]]:
        """The record's `extra=` keys in the order given, values made text with str()."""
        return attribute_pairs(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in STANDARD_RECORD_KEYS
        )

    def texts(self, record: logging.LogRecord) -> tuple[Any, ...]:
        """The record as LoggerMsg's 15 Text fields in schema order: the hot path."""
        has_stack = record.exc_info or record.exc_text or record.stack_info
        return (
            _iso_utc(record.created),
            _HOSTNAME,
            record.name,
            record.module,
            record.filename,
            record.funcName,
            record.lineno,
            record.getMessage(),
            record.pathname,
            record.process if record.process is not None else os.getpid(),
            record.processName,
            record.thread,
            record.threadName,
            self.service_name,
            _stack_trace(record) if has_stack else "",
        )

    def flush(self) -> None:
        self._flush_failed = not self.client.flush(timeout_s=EXIT_WAIT_S)

    def close(self) -> None:
        """logging.shutdown() flushes, then closes: after a flush that already waited in
        vain, closing does not wait again (the exit stays within EXIT_WAIT_S)."""
        try:
            self.client.close(timeout_s=0 if self._flush_failed else EXIT_WAIT_S)
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
