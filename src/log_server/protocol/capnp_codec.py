"""Frame payload -> LogRecord, for Cap'n Proto `LoggerMsg` in packed or standard encoding."""

from __future__ import annotations

from importlib import resources
from typing import Any

import capnp

from log_server.core.records import FIELD_NAMES, LogRecord, checked_attributes
from log_server.protocol.errors import PayloadError

# An unpacked single-segment message starts with its segment count minus one: four zero
# bytes. A packed message starts with a tag byte that is zero only for an all-zero first
# word, which no valid message has. So four zero bytes mean "standard encoding".
_UNPACKED_MARK = b"\x00\x00\x00\x00"

# Cap'n Proto field names, in LogRecord's order (the schema's ordinals).
_CAPNP_FIELDS = (
    "timestamp",
    "hostname",
    "loggerName",
    "module",
    "level",
    "filename",
    "functionName",
    "lineNumber",
    "message",
    "pathName",
    "processId",
    "processName",
    "threadId",
    "threadName",
    "serviceName",
    "stackTrace",
)
assert len(_CAPNP_FIELDS) == len(FIELD_NAMES)
TEXT_FIELDS = tuple(name for name in _CAPNP_FIELDS if name != "level")
_LEVEL_INDEX = _CAPNP_FIELDS.index("level")


def _load_schemas() -> tuple[Any, Any, Any]:
    """With a parser of our own, so that a program that also loads another copy of this
    schema (same file id) through pycapnp's global parser does not abort."""
    parser = capnp.SchemaParser()
    schema_file = resources.files("log_server") / "schema" / "logger.capnp"
    raw_file = resources.files("log_server") / "protocol" / "logger_raw.capnp"
    with resources.as_file(schema_file) as path, resources.as_file(raw_file) as raw_path:
        return parser, parser.load(str(path)).LoggerMsg, parser.load(str(raw_path)).LoggerMsgRaw


class CapnpDecoder:
    """Decodes one frame payload into a LogRecord or raises PayloadError.

    Reading limits scale with --max_frame_size: a packed frame can expand, and Cap'n Proto
    allocates what the segment table declares, so the traversal limit caps that memory.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self._parser, self._msg, self._raw = _load_schemas()
        # Packed text barely compresses, so a legitimate message unpacks to about its frame
        # size; twice the frame size (in 8-byte words) leaves room and bounds hostile input.
        self._limits = {
            "traversal_limit_in_words": max_frame_bytes // 4 + 1024,
            "nesting_limit": 16,
        }
        self._max_unpacked_bytes = (max_frame_bytes // 4 + 1024) * 8

    def decode(self, payload: bytes) -> LogRecord:
        try:
            if payload.startswith(_UNPACKED_MARK):
                if len(payload) % 8:
                    # A standard-encoded message is whole 8-byte words; pycapnp would drop
                    # the odd tail silently, the compiled decoder refuses it.
                    raise PayloadError("input length must be a multiple of eight bytes")
                words = payload
            else:
                words = unpack(payload, min(self._max_unpacked_bytes, unpacked_limit(payload)))
            with self._msg.from_bytes(words, **self._limits) as reader:
                return self._read(reader, words)
        except PayloadError as exc:
            raise PayloadError(f"invalid Cap'n Proto LoggerMsg: {exc.reason}") from None
        except Exception as exc:  # the trust boundary: hostile bytes raise only PayloadError
            raise PayloadError(f"invalid Cap'n Proto LoggerMsg: {_first_line(exc)}") from None

    def _read(self, reader: Any, words: bytes) -> LogRecord:
        get = reader._get
        values: list[Any]
        try:
            values = [get(name) for name in TEXT_FIELDS]
            if reader._has("attributes"):
                pairs = [(a._get("key"), a._get("value")) for a in get("attributes")]
                values.append(checked_attributes(pairs))
        except UnicodeDecodeError:
            values = self._read_replacing(words)
        values.insert(_LEVEL_INDEX, get("level").raw)
        return LogRecord(*values)

    def _read_replacing(self, words: bytes) -> list[Any]:
        """Slow path for invalid UTF-8: read the fields as bytes and replace bad sequences."""
        with self._raw.from_bytes(words, **self._limits) as raw:
            values: list[Any] = [_raw_text(raw, name) for name in TEXT_FIELDS]
            if raw._has("attributes"):
                pairs = [(_raw_text(a, "key"), _raw_text(a, "value")) for a in raw.attributes]
                values.append(checked_attributes(pairs))
            return values


def _raw_text(raw: Any, name: str) -> str:
    data = bytes(raw._get(name))
    if data.endswith(b"\x00"):  # Text's NUL terminator
        data = data[:-1]
    elif raw._has(name):
        # Read as Text this is an error too; pycapnp merely failed to word it (the
        # offending byte is in its message and is not UTF-8).
        raise PayloadError("Message contains text that is not NUL-terminated")
    return data.decode("utf-8", "replace")


# Packed encoding turns a run of up to 255 zero words into two bytes, so a 2 KB frame of
# zero runs declared megabytes of empty text (each NUL written as a 4-byte escape). Real
# messages are text and barely compress: 16 times the frame (at least 64 KiB, for small
# messages of mostly empty fields) is far above any of them and stops that amplification.
PACKED_EXPANSION = 16
MIN_UNPACKED_LIMIT_BYTES = 64 * 1024


def unpacked_limit(packed: bytes) -> int:
    """The most bytes this packed payload may unpack to."""
    return max(MIN_UNPACKED_LIMIT_BYTES, PACKED_EXPANSION * len(packed))


def unpack(packed: bytes, max_bytes: int) -> bytes:
    """Cap'n Proto's packed encoding -> standard encoding, as many words as the message's
    segment table declares (what follows is not read, as the Cap'n Proto libraries do).

    Done here rather than by pycapnp's `from_bytes_packed`, which on some truncated inputs
    (e.g. `01 01 01 01`) throws from a C++ destructor and aborts the whole process: a
    hostile client could kill the server. Only the fallback path uses this; the compiled
    compiled decoder unpacks with the Rust capnp library. Output is bounded by `max_bytes`."""
    out = bytearray()
    end = len(packed)
    pos = 0
    needed = 8  # bytes: the first word holds the segment count
    table_read = False
    while len(out) < needed:
        if pos >= end:
            raise PayloadError("Premature EOF in packed input")
        tag = packed[pos]
        pos += 1
        if tag == 0x00 or tag == 0xFF:
            if tag == 0xFF:
                if pos + 8 > end:
                    raise PayloadError("Premature EOF in packed input")
                out += packed[pos : pos + 8]
                pos += 8
            else:
                out += bytes(8)
            if pos >= end:
                raise PayloadError("Premature EOF in packed input")
            count = packed[pos]
            pos += 1
            if tag == 0x00:
                out += bytes(8 * count)
            else:
                take = min(8 * count, end - pos)
                out += packed[pos : pos + take]
                pos += take
        else:
            positions = _TAG_POSITIONS[tag]
            if pos + len(positions) > end:
                raise PayloadError("Premature EOF in packed input")
            word = bytearray(8)
            for index, byte in zip(positions, packed[pos : pos + len(positions)], strict=True):
                word[index] = byte
            pos += len(positions)
            out += word
        if not table_read and len(out) >= needed:
            segments = int.from_bytes(out[0:4], "little") + 1
            if segments > _MAX_SEGMENTS:
                raise PayloadError("Message has too many segments")
            table_bytes = (4 + 4 * segments + 7) // 8 * 8
            if needed < table_bytes:
                needed = table_bytes
                continue
            sizes = [int.from_bytes(out[4 + 4 * i : 8 + 4 * i], "little") for i in range(segments)]
            needed = table_bytes + 8 * sum(sizes)
            table_read = True
        if needed > max_bytes:
            raise PayloadError(
                f"packed message unpacks to more than {max_bytes} bytes (at most "
                f"{PACKED_EXPANSION} times its size, at least {MIN_UNPACKED_LIMIT_BYTES})"
            )
    return bytes(out[:needed])


_MAX_SEGMENTS = 512
# For each tag byte, the positions of the word's non-zero bytes that follow it.
_TAG_POSITIONS = [tuple(bit for bit in range(8) if tag & (1 << bit)) for tag in range(256)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # KJ messages start with "file.c++:123: failed: "; the rest is the useful part.
    return text.split("failed: ", 1)[-1][:200]
