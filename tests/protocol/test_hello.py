"""recognise_hello: HelloMsg frames of both shapes, LoggerMsg frames, and fuzzed bytes."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from log_server.protocol.hello import Hello, MalformedHello, recognise_hello


def encode_hello(texts: list[str]) -> bytes:
    """An independent raw encoder: one segment, a root struct of 0 data words, n Text pointers."""
    n = len(texts)
    words = [struct.pack("<Q", n << 48)]  # root: struct, offset 0, 0 data words, n pointers
    blobs: list[bytes] = []
    tail = 1 + n  # word index where the next text blob goes
    for i, text in enumerate(texts):
        raw = text.encode() + b"\0"
        padded = raw + b"\0" * (-len(raw) % 8)
        offset = tail - (1 + i + 1)
        words.append(struct.pack("<Q", 1 | (offset << 2) | (2 << 32) | (len(raw) << 35)))
        blobs.append(padded)
        tail += len(padded) // 8
    segment = b"".join(words) + b"".join(blobs)
    return struct.pack("<II", 0, len(segment) // 8) + segment


def test_five_pointer_hello_is_recognised() -> None:
    payload = encode_hello(["svc", "host1", "10.0.0.1:5000", "10.0.0.2:4020", "1.2.3.4"])
    words = f"{len(payload) // 8 - 1:02x}000000"
    assert payload[:16].hex() == "00000000" + words + "0000000000000500"
    hello = recognise_hello(payload)
    assert hello == Hello("svc", "host1", "10.0.0.1:5000", "10.0.0.2:4020", "1.2.3.4")
    assert isinstance(hello, Hello) and hello.identity == "svc@host1 (10.0.0.1:5000)"


def test_four_pointer_hello_is_recognised() -> None:
    hello = recognise_hello(encode_hello(["svc", "h", "", "x"]))
    assert hello == Hello("svc", "h", "", "x", "")
    assert isinstance(hello, Hello) and hello.identity == "svc@h"


def test_logger_msg_shape_is_not_a_hello() -> None:
    payload = bytearray(encode_hello(["a", "b", "c", "d", "e"]))
    payload[12:14] = struct.pack("<H", 1)  # one data word: a LoggerMsg's shape
    assert recognise_hello(bytes(payload)) is None


def test_bad_text_pointer_is_malformed() -> None:
    payload = bytearray(encode_hello(["a", "b", "c", "d", "e"]))
    payload[16:24] = struct.pack("<Q", 1 | (500 << 2) | (2 << 32) | (4 << 35))
    assert isinstance(recognise_hello(bytes(payload)), MalformedHello)


@given(st.lists(st.text(max_size=40), min_size=4, max_size=5))
def test_round_trip(texts: list[str]) -> None:
    clean = [t.replace("\0", "") for t in texts]
    hello = recognise_hello(encode_hello(clean))
    assert isinstance(hello, Hello)
    assert [hello.from_name, hello.from_host, hello.from_address, hello.to_address][:4] == clean[:4]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = recognise_hello(data)
    assert result is None or isinstance(result, (Hello, MalformedHello))
