"""Protocol errors, split by whether the connection can go on (as Vector's decoders do)."""

from __future__ import annotations


class ProtocolError(Exception):
    """A peer sent something we cannot accept. `reason` is written to the server's log."""

    #: False when the byte stream itself is broken and the connection must close.
    can_continue: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FramingError(ProtocolError):
    """The length prefix is unusable (e.g. larger than --max_frame_size): the stream has no
    trustworthy frame boundary any more, so the connection closes."""


class PayloadError(ProtocolError):
    """A well-framed payload that is not a valid LoggerMsg. The frame boundary is still
    known, but the peer is sending something other than our protocol, so we close too."""
