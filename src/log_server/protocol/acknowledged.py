"""The TCP protocol's acknowledged mode (docs/protocol.md), without I/O.

A client that opens its connection with ACK_HELLO gets the hello back, then, as 8-byte
big-endian counts, how many of its messages are durable. `Opening` decides from the first
bytes whether a connection asked for it; `AckCounter` turns "everything up to sequence number
N is durable" into the count this connection is owed."""

from __future__ import annotations

import collections
import struct
from dataclasses import dataclass

# Read as a frame length, "LSAC" is above any allowed frame limit, so the word cannot be
# mistaken for a frame, and existing clients never send it.
ACK_HELLO = b"LSACKv1\n"
_count = struct.Struct(">Q").pack


@dataclass(frozen=True)
class Opened:
    """The opening is decided: `acknowledged` or not, and the bytes of the frame stream."""

    acknowledged: bool
    frames: bytes


class Opening:
    """Before the first frame: is this an acknowledged connection? The hello may arrive in
    pieces, so bytes that could still be its start are held back."""

    def __init__(self) -> None:
        self._head = b""

    def feed(self, data: bytes) -> Opened | None:
        """None while undecided."""
        head = self._head + data
        if len(head) < len(ACK_HELLO) and ACK_HELLO.startswith(head):
            self._head = head
            return None
        self._head = b""
        if head.startswith(ACK_HELLO):
            return Opened(True, head[len(ACK_HELLO) :])
        return Opened(False, head)


class AckCounter:
    """One acknowledged connection's count of durable messages."""

    def __init__(self) -> None:
        self.accepted = 0  # messages of this connection accepted so far
        self.acked = 0  # the last count sent
        self._marks: collections.deque[tuple[int, int]] = collections.deque()

    def accept(self, last_seq: int, count: int) -> None:
        """`count` more messages were accepted, the last numbered `last_seq`."""
        self.accepted += count
        self._marks.append((last_seq, self.accepted))

    def durable(self, seq: int) -> bytes | None:
        """Everything up to `seq` is durable: the ack to send, if the count grew."""
        marks = self._marks
        count = self.acked
        while marks and marks[0][0] <= seq:
            count = marks.popleft()[1]
        if count <= self.acked:
            return None
        self.acked = count
        return _count(count)

    @property
    def owed(self) -> bool:
        """Accepted messages not yet acknowledged."""
        return self.acked < self.accepted
