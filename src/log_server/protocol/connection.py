"""A TCP connection's bytes -> formatted, numbered lines: the whole inbound protocol as one
sans-IO object per connection.

Two implementations with the same behaviour and byte-identical output:
- `PythonConnectionDecoder`: FrameDecoder + CapnpDecoder (pycapnp) + format.py. The
  reference, and the fallback when the compiled decoder is not installed.
- `log_server_native.ConnectionDecoder` (Rust, `native/`): the same in one call per read,
  about ten times cheaper per message (docs/benchmarks.md).
tests/protocol/test_connection.py checks that both give the same lines for the same bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple, Protocol

from log_server.core.format import FORMATTERS
from log_server.core.records import LogRecord
from log_server.protocol.capnp_codec import CapnpDecoder
from log_server.protocol.errors import PayloadError
from log_server.protocol.framing import FrameDecoder, HealthRequested


class StopKind(enum.StrEnum):
    HEALTH = "health"  # the connection asked for the status line instead of sending frames
    FRAMING = "framing"  # a bad length prefix: the stream cannot be followed any further
    PAYLOAD = "payload"  # a frame that is not a LoggerMsg


class Stop(NamedTuple):
    """Why the stream cannot go on (the frames before it were decoded)."""

    kind: StopKind
    reason: str = ""


class FeedResult(NamedTuple):
    """The lines of the complete frames, numbered from `first_seq`, and whether to stop."""

    lines: bytes
    messages: int
    stop: Stop | None


class ConnectionDecoder(Protocol):
    def feed(self, data: bytes, first_seq: int, received_at: str) -> FeedResult: ...

    @property
    def buffered_bytes(self) -> int: ...


# The longest line one message may become (--max_line_size): above the 10 MiB frame limit,
# so that a frame of ordinary text fits, but a frame of control characters, written
# escaped, four bytes for one, cannot make a 40 MiB line.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


class PythonConnectionDecoder:
    def __init__(
        self,
        max_frame_bytes: int,
        line_format: str = "text",
        capnp_decoder: CapnpDecoder | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.framer = FrameDecoder(max_frame_bytes)
        self.capnp = capnp_decoder or CapnpDecoder(max_frame_bytes)
        self.format = FORMATTERS[line_format]
        self._stopped = False

    @property
    def buffered_bytes(self) -> int:
        return self.framer.buffered_bytes

    def feed(self, data: bytes, first_seq: int, received_at: str) -> FeedResult:
        if self._stopped:
            return FeedResult(b"", 0, None)
        payloads = self.framer.feed(data)
        framer_stop = self.framer.stop
        if isinstance(framer_stop, HealthRequested):
            self._stopped = True
            return FeedResult(b"", 0, Stop(StopKind.HEALTH))
        stop = Stop(StopKind.FRAMING, framer_stop.reason) if framer_stop is not None else None
        records: list[LogRecord] = []
        for payload in payloads:
            try:
                records.append(self.capnp.decode(payload))
            except PayloadError as exc:
                stop = Stop(StopKind.PAYLOAD, exc.reason)
                break
        fmt = self.format
        lines = [fmt(seq, record, received_at) for seq, record in enumerate(records, first_seq)]
        # A str of n characters is at most 4n bytes in UTF-8: exact sizes only when close.
        if lines and max(map(len, lines)) * 4 > self.max_line_bytes:
            for index, line in enumerate(lines):
                size = len(line.encode("utf-8", "backslashreplace"))
                if size > self.max_line_bytes:
                    del lines[index:]
                    stop = Stop(StopKind.PAYLOAD, line_too_long(size, self.max_line_bytes))
                    break
        self._stopped = stop is not None
        text = "".join(lines)
        return FeedResult(text.encode("utf-8", "backslashreplace"), len(lines), stop)


def line_too_long(size: int, limit: int) -> str:
    return f"message makes a line of {size} bytes, over the limit of {limit} (--max_line_size)"


class NativeConnectionDecoder:
    """The compiled decoder (`log_server_native.ConnectionDecoder`) with typed results: it
    returns plain tuples, converted here (a stop happens once per connection at most)."""

    __slots__ = ("_native",)

    def __init__(
        self, max_frame_bytes: int, line_format: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ) -> None:
        from log_server_native import ConnectionDecoder as Compiled

        self._native = Compiled(max_frame_bytes, line_format, max_line_bytes)

    @property
    def buffered_bytes(self) -> int:
        return int(self._native.buffered_bytes)

    def feed(self, data: bytes, first_seq: int, received_at: str) -> FeedResult:
        lines, count, stop = self._native.feed(data, first_seq, received_at)
        if stop is None:
            return FeedResult(lines, count, None)
        return FeedResult(lines, count, Stop(StopKind(stop[0]), stop[1]))


DecoderFactory = Callable[[], ConnectionDecoder]


def native_decoder_available() -> bool:
    try:
        import log_server_native  # noqa: F401
    except ImportError:
        return False
    return True


def use_native_decoder(decoder: str) -> bool:
    """`decoder`: "native", "python", or "auto" (native when installed)."""
    return decoder == "native" or (decoder == "auto" and native_decoder_available())


def decoder_factory(
    decoder: str,
    max_frame_bytes: int,
    line_format: str,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> DecoderFactory:
    if use_native_decoder(decoder):
        return lambda: NativeConnectionDecoder(max_frame_bytes, line_format, max_line_bytes)
    shared = CapnpDecoder(max_frame_bytes)
    return lambda: PythonConnectionDecoder(max_frame_bytes, line_format, shared, max_line_bytes)
