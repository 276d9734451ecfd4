"""Hostile input end to end: each bad connection is closed (or its text escaped), with a
log line; the server stays healthy, and a well-behaved client's messages all land.
(LoggerMsg holds only Text fields, which are leaves: deep nesting cannot occur in a valid
message; the decoders' nesting limit of 16 and the fuzzing cover crafted pointer chains.)"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from support import RunningServer, encode_msg, frame, msg_frame


def unpacked_with(word_at: int, word: bytes) -> bytes:
    """A valid standard-encoded message with one 8-byte word replaced."""
    data = bytearray(encode_msg(False, message="victim", hostname="h"))
    data[word_at : word_at + 8] = word
    return bytes(data)


# Byte 8 is the root pointer, 16 the data section, 24... the 15 text pointers.
HOSTILE = {
    "bad pointer (far outside the message)": unpacked_with(
        24 + 7 * 8, struct.pack("<Q", 0x7FFFFFF1)
    ),
    "far pointer into a missing segment": unpacked_with(
        24 + 7 * 8, struct.pack("<Q", 2 | (9 << 32))
    ),
    "huge list (2^29 bytes claimed)": unpacked_with(
        24 + 7 * 8, struct.pack("<Q", 1 | (2 << 32) | ((1 << 29) - 1) << 35)
    ),
    "garbage": b"\x13\x37" * 50,
    "truncated packed message": encode_msg(True, message="cut", hostname="h")[:-4],
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_frame_closes_only_its_connection(
    server_factory: Callable[..., RunningServer], name: str
) -> None:
    server = server_factory("--tcp_only")
    with server.connect() as good:
        good.sendall(msg_frame(message="good before"))
        with server.connect() as bad:
            bad.sendall(frame(HOSTILE[name]))
            bad.settimeout(10)
            try:
                assert bad.recv(10) == b""
            except ConnectionResetError:
                pass
        good.sendall(msg_frame(message="good after"))
        server.wait_for_text("good after")
    server.wait_for_text("frame_rejected")
    assert server.health().startswith("OK ")
    assert not any("victim" in ln for ln in server.lines())


def test_a_1mb_field_and_invalid_utf8_are_written_escaped_on_one_line(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory("--tcp_only", "--max_frame_size", "4MB")
    big = "x\n" * (512 * 1024)  # 1 MiB of text with newlines to escape
    bad_utf8 = bytearray(encode_msg(False, message="bad \u00e9 utf8"))
    at = bad_utf8.find("\u00e9".encode())
    bad_utf8[at] = 0xFF
    server.send(msg_frame(message=big, hostname="big") + frame(bytes(bad_utf8)))
    line = server.wait_for_line("bad \ufffd")
    lines = server.lines()
    big_lines = [ln for ln in lines if " big " in ln]
    assert len(big_lines) == 1 and big_lines[0].count("x\\n") == 512 * 1024
    assert "\ufffd" in line


def test_a_small_frame_that_unpacks_to_megabytes_is_refused(server: RunningServer) -> None:
    """Issue 14 item 10: a ~1 KB packed frame of zero runs became a 4 MB line."""
    bomb = msg_frame(message="\x00" * 1_000_000)
    assert len(bomb) < 8 * 1024
    with server.connect() as other:
        with server.connect() as hostile:
            hostile.sendall(bomb)
            hostile.settimeout(10)
            assert hostile.recv(10) == b"", "the connection is closed"
        other.sendall(msg_frame(message="still here"))
        line = server.wait_for_line("packed message unpacks to more than")
        assert "closing connection from" in line
        server.wait_for_text("still here")
    assert server.active_log.stat().st_size < 64 * 1024
