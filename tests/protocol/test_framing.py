"""FrameDecoder: the sans-IO framer, fed whole, split at every byte boundary, and fuzzed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from log_server.protocol.errors import FramingError
from log_server.protocol.framing import HEALTH_REQUESTED, FrameDecoder


def framed(*payloads: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


def feed_in_pieces(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        out.extend(decoder.feed(data[start:cut]))
        start = cut
    return out


PAYLOADS = [b"a", b"\x10\x00hello", b"x" * 300, b"", b"last"]


def test_whole_stream_gives_every_frame_and_skips_keepalives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    assert decoder.feed(framed(*PAYLOADS)) == [p for p in PAYLOADS if p]
    assert decoder.stop is None
    assert decoder.buffered_bytes == 0


@pytest.mark.parametrize("cut", range(1, len(framed(*PAYLOADS))))
def test_split_at_every_byte_boundary(cut: int) -> None:
    data = framed(*PAYLOADS)
    decoder = FrameDecoder(max_frame_bytes=1024)
    assert feed_in_pieces(decoder, data, [cut]) == [p for p in PAYLOADS if p]
    assert decoder.stop is None


def test_one_byte_at_a_time() -> None:
    data = framed(*PAYLOADS)
    decoder = FrameDecoder(max_frame_bytes=1024)
    assert feed_in_pieces(decoder, data, list(range(1, len(data)))) == [p for p in PAYLOADS if p]


def test_incomplete_frame_is_held_back() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    data = framed(b"complete", b"partial-frame")
    assert decoder.feed(data[:-3]) == [b"complete"]
    assert decoder.buffered_bytes == 4 + len(b"partial-frame") - 3
    assert decoder.feed(data[-3:]) == [b"partial-frame"]


def test_oversized_length_stops_the_stream_after_the_good_frames() -> None:
    decoder = FrameDecoder(max_frame_bytes=10)
    data = framed(b"ok") + struct.pack(">I", 11) + b"y" * 11 + framed(b"never")
    assert decoder.feed(data) == [b"ok"]
    assert isinstance(decoder.stop, FramingError)
    assert "11 bytes exceeds the limit of 10" in decoder.stop.reason
    assert decoder.feed(framed(b"more")) == []


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_bytes=10)
    assert decoder.feed(framed(b"z" * 10)) == [b"z" * 10]


@pytest.mark.parametrize("first", [b"health", b"health\n", b"health\r\n", b"healthcheck"])
def test_health_word_at_connection_start(first: bytes) -> None:
    decoder = FrameDecoder(max_frame_bytes=1 << 30)
    assert decoder.feed(first) == []
    assert decoder.stop is HEALTH_REQUESTED


def test_health_word_split_over_reads() -> None:
    decoder = FrameDecoder(max_frame_bytes=1 << 30)
    for piece in (b"he", b"al", b"t"):
        assert decoder.feed(piece) == []
        assert decoder.stop is None
    decoder.feed(b"h\n")
    assert decoder.stop is HEALTH_REQUESTED


def test_health_word_after_a_frame_is_just_a_bad_length() -> None:
    decoder = FrameDecoder(max_frame_bytes=1 << 30)
    assert decoder.feed(framed(b"m") + b"health\n") == [b"m"]
    assert isinstance(decoder.stop, FramingError)


def test_h_prefix_that_is_not_health_is_an_oversized_frame() -> None:
    decoder = FrameDecoder(max_frame_bytes=1 << 20)
    assert decoder.feed(b"hex") == []
    assert decoder.stop is None
    assert decoder.feed(b"!") == []
    assert isinstance(decoder.stop, FramingError)


@given(
    payloads=st.lists(st.binary(max_size=64), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
def test_any_split_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    data = framed(*payloads)
    decoder = FrameDecoder(max_frame_bytes=64)
    got = feed_in_pieces(decoder, data, [c for c in cuts if c <= len(data)])
    assert got == [p for p in payloads if p]
    assert decoder.stop is None


@given(st.binary(max_size=4096), st.lists(st.integers(0, 4096), max_size=10))
def test_garbage_never_raises_and_split_does_not_matter(data: bytes, cuts: list[int]) -> None:
    whole = FrameDecoder(max_frame_bytes=256)
    expected = whole.feed(data)
    pieces = FrameDecoder(max_frame_bytes=256)
    got = feed_in_pieces(pieces, data, [c for c in cuts if c <= len(data)])
    assert got == expected
    assert type(pieces.stop) is type(whole.stop)
