"""recognise_hello and GreetingReader: HelloMsg frames of both shapes, LoggerMsg frames, a
connection's first bytes split anywhere, and fuzzed bytes."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from support import hello_payload as encode_hello

from log_server.protocol.hello import (
    MAX_HELLO_BYTES,
    Greeting,
    GreetingReader,
    Hello,
    MalformedHello,
    recognise_hello,
)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def feed_in_pieces(data: bytes, cut: int) -> Greeting | None:
    reader = GreetingReader()
    first = reader.feed(data[:cut])
    if first is not None:
        return Greeting(first.hello, first.rest + data[cut:])
    return reader.feed(data[cut:])


def test_five_pointer_hello_is_recognised() -> None:
    payload = encode_hello(["svc", "host1", "10.0.0.1:5000", "10.0.0.2:4020", "1.2.3.4"])
    words = f"{len(payload) // 8 - 1:02x}000000"
    assert payload[:16].hex() == "00000000" + words + "0000000000000500"
    hello = recognise_hello(payload)
    assert hello == Hello("svc", "host1", "10.0.0.1:5000", "10.0.0.2:4020", "1.2.3.4")
    assert isinstance(hello, Hello)
    assert hello.identity("10.0.0.1:5000") == "svc@host1 (10.0.0.1:5000)"
    assert hello.identity("127.0.0.1:9") == "svc@host1 (127.0.0.1:9, fromAddress 10.0.0.1:5000)"


def test_four_pointer_hello_is_recognised() -> None:
    hello = recognise_hello(encode_hello(["svc", "h", "", "x"]))
    assert hello == Hello("svc", "h", "", "x", "")
    assert isinstance(hello, Hello) and hello.identity("127.0.0.1:1") == "svc@h (127.0.0.1:1)"


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


def test_greeting_strips_the_hello_and_keeps_what_follows_however_split() -> None:
    hello = encode_hello(["svc", "host1", "10.0.0.1:5000", "10.0.0.2:4020", ""])
    after = b"\0\0\0\0" + frame(b"\x10\x05rest-of-stream")
    stream = b"\0\0\0\0" + frame(hello) + after
    for cut in range(len(stream) + 1):
        greeting = feed_in_pieces(stream, cut)
        assert greeting == Greeting(recognise_hello(hello), after), cut


def test_greeting_without_hello_passes_every_byte_on_however_split() -> None:
    payload = b"\x10\x05" + bytes(range(60))  # a packed LoggerMsg starts with a tag byte
    for stream in (frame(payload) * 2, b"health\n", b"LSACKv1\n" + frame(payload), frame(b"ab")):
        for cut in range(len(stream) + 1):
            greeting = feed_in_pieces(stream, cut)
            assert greeting == Greeting(None, stream), (stream, cut)


def test_greeting_is_decided_early_for_a_long_first_frame() -> None:
    """Only a HelloMsg is held until whole; a large LoggerMsg is passed on at its 20th byte."""
    reader = GreetingReader()
    head = frame(b"\0" * 4 + b"\x10" + b"\0" * 2000)[:20]
    assert reader.feed(head) == Greeting(None, head)
    huge = struct.pack(">I", MAX_HELLO_BYTES + 1) + b"\0" * 16
    assert GreetingReader().feed(huge) == Greeting(None, huge)


def test_greeting_reports_a_malformed_hello() -> None:
    payload = bytearray(encode_hello(["a", "b", "c", "d", "e"]))
    payload[16:24] = struct.pack("<Q", 1 | (500 << 2) | (2 << 32) | (4 << 35))
    greeting = GreetingReader().feed(frame(bytes(payload)))
    assert greeting is not None and isinstance(greeting.hello, MalformedHello)


@given(st.binary(max_size=120), st.integers(min_value=0, max_value=120))
def test_greeting_never_loses_or_invents_bytes(data: bytes, cut: int) -> None:
    greeting = feed_in_pieces(data, cut)
    if greeting is None:
        return
    if greeting.hello is None:
        assert data.endswith(greeting.rest)
        assert set(data[: len(data) - len(greeting.rest)]) <= {0}  # only keep-alives dropped
    else:
        assert data.endswith(greeting.rest)
