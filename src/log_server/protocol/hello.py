"""Sans-IO recognition of the original clients' HelloMsg, a connection's optional first frame.

Newer original clients open every connection with a HelloMsg in the standard (unpacked)
Cap'n Proto encoding, single segment, whose root struct has 0 data words and 4 or 5 Text
pointers. Every LoggerMsg has 1 data word (the level), so the shape alone tells them apart
before either decoder runs: the compiled and the Python paths then agree by construction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_u32 = struct.Struct("<I").unpack_from
_u64 = struct.Struct("<Q").unpack_from
_length = struct.Struct(">I").unpack_from
HELLO_FIELDS = ("from_name", "from_host", "from_address", "to_address", "from_public_ip")
# Five short texts: a first frame longer than this is taken for a LoggerMsg without waiting
# for all of it, so holding the first frame back costs at most this much per connection.
MAX_HELLO_BYTES = 64 * 1024
KEEP_ALIVE = b"\0\0\0\0"


@dataclass(frozen=True)
class Hello:
    """The fields of a recognised HelloMsg (missing or null pointers are empty text)."""

    from_name: str = ""
    from_host: str = ""
    from_address: str = ""
    to_address: str = ""
    from_public_ip: str = ""

    def identity(self, peer: str) -> str:
        """`fromName@fromHost (peer)`: how the server's connection lines name the connection.
        The address is the socket's; the client's own `fromAddress` is added when it differs
        (behind a proxy or NAT), as what the client says rather than what the server saw."""
        who = f"{self.from_name}@{self.from_host} ({peer}"
        if self.from_address and self.from_address != peer:
            who += f", fromAddress {self.from_address}"
        return who + ")"


@dataclass(frozen=True)
class MalformedHello:
    """The frame has a HelloMsg's shape but its text pointers do not resolve; `reason` says why."""

    reason: str


def _signed30(value: int) -> int:
    value &= 0x3FFFFFFF
    return value - (1 << 30) if value & (1 << 29) else value


def _text(segment: bytes, pointer_word: int) -> str:
    """Read one Text pointer at word index `pointer_word`; raises ValueError if it is bad."""
    pointer = _u64(segment, pointer_word * 8)[0]
    if pointer == 0:
        return ""
    if pointer & 3 != 1 or (pointer >> 32) & 7 != 2:
        raise ValueError(f"pointer {pointer_word} is not a byte list")
    start = (pointer_word + 1 + _signed30(pointer >> 2)) * 8
    count = pointer >> 35
    if start < 0 or start + count > len(segment) or count == 0 or segment[start + count - 1] != 0:
        raise ValueError(f"text at pointer {pointer_word} is out of bounds or unterminated")
    return segment[start : start + count - 1].decode("utf-8", errors="replace")


def _has_hello_shape(head: bytes, length: int) -> bool:
    """Do a payload's first 16 bytes (of `length`) say: one segment filling the payload, a
    root struct with 0 data words and 4 or 5 pointers?"""
    if len(head) < 16 or _u32(head, 0)[0] != 0 or length != 8 + _u32(head, 4)[0] * 8:
        return False
    root = _u64(head, 8)[0]
    return root & 3 == 0 and (root >> 32) & 0xFFFF == 0 and root >> 48 in (4, 5)


def recognise_hello(payload: bytes) -> Hello | MalformedHello | None:
    """Return the Hello if `payload` has a HelloMsg's shape, else None (treat it as a LoggerMsg)."""
    if not _has_hello_shape(payload[:16], len(payload)):
        return None
    words = _u32(payload, 4)[0]
    root = _u64(payload, 8)[0]
    pointers = root >> 48
    segment = payload[8:]
    first = 1 + _signed30(root >> 2)
    if first < 1 or first + pointers > words:
        return MalformedHello("root struct lies outside the segment")
    try:
        texts = [_text(segment, first + i) for i in range(pointers)]
    except ValueError as error:
        return MalformedHello(str(error))
    return Hello(**dict(zip(HELLO_FIELDS, texts, strict=False)))


@dataclass(frozen=True)
class Greeting:
    """A connection's opening is decided: its HelloMsg (None when it sent none) and the bytes
    that follow it, to be decoded as usual."""

    hello: Hello | MalformedHello | None
    rest: bytes


class GreetingReader:
    """Holds a connection's first frame back until it is known whether it is a HelloMsg
    (after any keep-alives, which are dropped). A first frame is decided within its first
    20 bytes (a LoggerMsg's are packed, a HelloMsg's are not), except a HelloMsg itself, which
    is held until it is whole: at most MAX_HELLO_BYTES."""

    def __init__(self) -> None:
        self._head = b""

    @property
    def buffered_bytes(self) -> int:
        return len(self._head)

    def feed(self, data: bytes) -> Greeting | None:
        """None while undecided."""
        buf = self._head + data
        while buf.startswith(KEEP_ALIVE):
            buf = buf[4:]
        greeting = _greeting(buf)
        self._head = buf if greeting is None else b""
        return greeting


def _greeting(buf: bytes) -> Greeting | None:
    if buf[:1] not in (b"\0", b""):
        return Greeting(None, buf)
    if len(buf) < 4:
        return None
    length = _length(buf)[0]
    if not 16 <= length <= MAX_HELLO_BYTES:
        return Greeting(None, buf)
    if len(buf) < 20:
        return None
    if not _has_hello_shape(buf[4:20], length):
        return Greeting(None, buf)
    if len(buf) < 4 + length:
        return None
    return Greeting(recognise_hello(buf[4 : 4 + length]), buf[4 + length :])
