"""Sans-IO framing of the TCP protocol: bytes in, frame payloads out; no sockets here.

Wire format: a 4-byte big-endian unsigned length, then that many payload bytes. A zero
length is a keep-alive. A connection whose first bytes are the ASCII word `health` asks
for one status line instead (as `echo health | nc host 4020` sends it).
"""

from __future__ import annotations

import struct

from log_server.protocol.errors import FramingError

HEADER_BYTES = 4
HEALTH_WORD = b"health"

_unpack_length = struct.Struct(">I").unpack_from


class HealthRequested:
    """The connection asked for a status line; no frames follow."""

    def __repr__(self) -> str:
        return "HealthRequested()"


HEALTH_REQUESTED = HealthRequested()


class FrameDecoder:
    """Feed it bytes as they arrive; it returns the complete frame payloads, in order.

    The result is the same however the input is split. Once the stream cannot go on,
    `stop` says why (a `FramingError`, or `HEALTH_REQUESTED`) and later input is ignored.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.stop: FramingError | HealthRequested | None = None
        self._pending = bytearray()
        self._need = HEADER_BYTES  # bytes `_pending` must hold before parsing is worth it
        self._at_start = True

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame held back (0 between frames)."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes]:
        if self.stop is not None or not data:
            return []
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need and not self._at_start:
                return []
            buf = bytes(self._pending)
            self._pending.clear()
        else:
            buf = data
        if self._at_start:
            if HEALTH_WORD.startswith(buf[: len(HEALTH_WORD)]) and len(buf) < len(HEALTH_WORD):
                self._pending += buf
                self._need = len(HEALTH_WORD)
                return []
            self._at_start = False
            if buf.startswith(HEALTH_WORD):
                self.stop = HEALTH_REQUESTED
                return []
        return self._split(buf)

    def _split(self, buf: bytes) -> list[bytes]:
        frames: list[bytes] = []
        pos, end_of_data, limit = 0, len(buf), self.max_frame_bytes
        while end_of_data - pos >= HEADER_BYTES:
            length = _unpack_length(buf, pos)[0]
            if length > limit:
                self.stop = FramingError(
                    f"frame of {length} bytes exceeds the limit of {limit} bytes "
                    f"(--max_frame_size) at stream offset +{pos}"
                )
                return frames
            end = pos + HEADER_BYTES + length
            if end > end_of_data:
                break
            if length:
                frames.append(buf[pos + HEADER_BYTES : end])
            pos = end
        if pos < end_of_data:
            self._pending += buf[pos:] if pos else buf
            if end_of_data - pos >= HEADER_BYTES:
                self._need = HEADER_BYTES + _unpack_length(buf, pos)[0]
            else:
                self._need = HEADER_BYTES
        return frames
