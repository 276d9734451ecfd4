"""CapnpDecoder: packed and standard encodings, invalid UTF-8, and bytes that are not capnp."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import encode_msg

from log_server.core.records import Level, LogRecord
from log_server.protocol.capnp_codec import CapnpDecoder
from log_server.protocol.errors import PayloadError

ALL_FIELDS = dict(
    timestamp="2026-11-27T10:00:00.000001+00:00",
    hostname="host-1",
    loggerName="app.db",
    module="db",
    level="critical",
    filename="db.py",
    functionName="connect",
    lineNumber="42",
    message="connection refused",
    pathName="/srv/db.py",
    processId="123",
    processName="worker",
    threadId="456",
    threadName="MainThread",
    serviceName="billing",
    stackTrace="Traceback...",
)
EXPECTED = LogRecord(
    "2026-11-27T10:00:00.000001+00:00",
    "host-1",
    "app.db",
    "db",
    Level.CRITICAL,
    "db.py",
    "connect",
    "42",
    "connection refused",
    "/srv/db.py",
    "123",
    "worker",
    "456",
    "MainThread",
    "billing",
    "Traceback...",
)


@pytest.fixture(scope="module")
def decoder() -> CapnpDecoder:
    return CapnpDecoder(max_frame_bytes=1 << 20)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_every_field_lands_in_its_place(decoder: CapnpDecoder, packed: bool) -> None:
    assert decoder.decode(encode_msg(packed, **ALL_FIELDS)) == EXPECTED


def test_empty_message_gives_empty_fields(decoder: CapnpDecoder) -> None:
    assert decoder.decode(encode_msg(True)) == LogRecord()


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_invalid_utf8_is_replaced_not_fatal(decoder: CapnpDecoder, packed: bool) -> None:
    unpacked = bytearray(encode_msg(False, message="caf\u00e9 ok", hostname="h"))
    at = unpacked.find("\u00e9".encode())
    unpacked[at : at + 2] = b"\xff\xfe"
    payload = bytes(unpacked)
    if packed:
        from support import LOGGER_SCHEMA

        with LOGGER_SCHEMA.LoggerMsg.from_bytes(payload) as reader:
            payload = reader.as_builder().to_bytes_packed()
    record = decoder.decode(payload)
    assert record.message == "caf\ufffd\ufffd ok"
    assert record.hostname == "h"


@pytest.mark.parametrize(
    "payload",
    [b"\x00\x00\x00", b"garbage!garbage!", b"\xff" * 40, b"\x00\x00\x00\x00\xff\xff\xff\x7f"],
)
def test_bytes_that_are_not_a_message_raise_payload_error(
    decoder: CapnpDecoder, payload: bytes
) -> None:
    with pytest.raises(PayloadError, match="invalid Cap'n Proto LoggerMsg"):
        decoder.decode(payload)


def test_standard_encoding_must_be_whole_words(decoder: CapnpDecoder) -> None:
    """Regression (found by `make fuzz`): pycapnp ignored an odd tail, native refused."""
    payload = encode_msg(False, message="x")
    assert decoder.decode(payload).message == "x"
    with pytest.raises(PayloadError, match="multiple of eight bytes"):
        decoder.decode(payload + b"\x01\x02\x03")


@pytest.mark.parametrize("hex_input", ["01010101", "0101010100", "01020101"])
def test_inputs_that_abort_pycapnp_are_refused_cleanly(
    decoder: CapnpDecoder, hex_input: str
) -> None:
    """Regression (found by `make fuzz`): pycapnp's from_bytes_packed aborts the process
    (a C++ exception from a destructor) on these; the fallback path unpacks by itself."""
    with pytest.raises(PayloadError):
        decoder.decode(bytes.fromhex(hex_input))


@given(st.lists(st.binary(max_size=60), max_size=3))
def test_unpack_inverts_pycapnp_packing(texts: list[bytes]) -> None:
    from log_server.protocol.capnp_codec import unpack

    fields = dict(zip(("message", "hostname", "stackTrace"), texts, strict=False))
    message = {k: v.decode("latin-1") for k, v in fields.items()}
    assert unpack(encode_msg(True, **message), 1 << 20) == encode_msg(False, **message)


def test_truncated_packed_message_raises_payload_error(decoder: CapnpDecoder) -> None:
    with pytest.raises(PayloadError):
        decoder.decode(encode_msg(True, **ALL_FIELDS)[:-5])


def test_message_larger_than_the_traversal_limit_is_refused() -> None:
    small = CapnpDecoder(max_frame_bytes=64)
    with pytest.raises(PayloadError):
        small.decode(encode_msg(False, message="x" * 10_000))


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_payload_error(payload: bytes) -> None:
    decoder = CapnpDecoder(max_frame_bytes=1 << 16)
    try:
        decoder.decode(payload)
    except PayloadError:
        pass
