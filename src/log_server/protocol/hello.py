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
HELLO_FIELDS = ("from_name", "from_host", "from_address", "to_address", "from_public_ip")


@dataclass(frozen=True)
class Hello:
    """The fields of a recognised HelloMsg (missing or null pointers are empty text)."""

    from_name: str = ""
    from_host: str = ""
    from_address: str = ""
    to_address: str = ""
    from_public_ip: str = ""

    @property
    def identity(self) -> str:
        """`fromName@fromHost (fromAddress)`: how the server's connection lines name the peer."""
        who = f"{self.from_name}@{self.from_host}"
        return f"{who} ({self.from_address})" if self.from_address else who


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


def recognise_hello(payload: bytes) -> Hello | MalformedHello | None:
    """Return the Hello if `payload` has a HelloMsg's shape, else None (treat it as a LoggerMsg)."""
    if len(payload) < 16 or _u32(payload, 0)[0] != 0:
        return None
    words = _u32(payload, 4)[0]
    if len(payload) != 8 + words * 8:
        return None
    root = _u64(payload, 8)[0]
    data_words, pointers = (root >> 32) & 0xFFFF, root >> 48
    if root & 3 != 0 or data_words != 0 or pointers not in (4, 5):
        return None
    segment = payload[8:]
    first = 1 + _signed30(root >> 2)
    if first < 1 or first + pointers > words:
        return MalformedHello("root struct lies outside the segment")
    try:
        texts = [_text(segment, first + i) for i in range(pointers)]
    except ValueError as error:
        return MalformedHello(str(error))
    return Hello(**dict(zip(HELLO_FIELDS, texts, strict=False)))
