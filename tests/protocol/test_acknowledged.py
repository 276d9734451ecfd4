from __future__ import annotations

import struct

from log_server.protocol.acknowledged import ACK_HELLO, AckCounter, Opened, Opening


def test_an_opening_without_the_hello_is_the_frame_stream() -> None:
    assert Opening().feed(b"\x00\x00\x00\x05hello") == Opened(False, b"\x00\x00\x00\x05hello")


def test_the_hello_in_pieces_then_frames() -> None:
    opening = Opening()
    for byte in ACK_HELLO[:-1]:
        assert opening.feed(bytes([byte])) is None
    assert opening.feed(ACK_HELLO[-1:] + b"rest") == Opened(True, b"rest")


def test_a_start_that_turns_out_not_to_be_the_hello_keeps_every_byte() -> None:
    opening = Opening()
    assert opening.feed(b"LSA") is None
    assert opening.feed(b"X") == Opened(False, b"LSAX")


def test_acks_count_only_this_connections_durable_messages() -> None:
    counter = AckCounter()
    counter.accept(last_seq=10, count=3)  # this connection's messages 1-3, up to seq 10
    counter.accept(last_seq=20, count=2)
    assert counter.durable(9) is None and counter.owed
    assert counter.durable(15) == struct.pack(">Q", 3)
    assert counter.durable(15) is None  # nothing new
    assert counter.durable(25) == struct.pack(">Q", 5)
    assert not counter.owed
