"""Frame payload -> LogRecord, for Cap'n Proto `LoggerMsg` in packed or standard encoding."""

from __future__ import annotations

from importlib import resources
from typing import Any

import capnp

from log_server.core.records import FIELD_NAMES, LogRecord
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

    def decode(self, payload: bytes) -> LogRecord:
        try:
            if payload.startswith(_UNPACKED_MARK):
                if len(payload) % 8:
                    # A standard-encoded message is whole 8-byte words; pycapnp would drop
                    # the odd tail silently, the compiled kernel refuses it.
                    raise PayloadError("input length must be a multiple of eight bytes")
                with self._msg.from_bytes(payload, **self._limits) as reader:
                    return self._read(reader, payload, packed=False)
            reader = self._msg.from_bytes_packed(payload, **self._limits)
            return self._read(reader, payload, packed=True)
        except PayloadError as exc:
            raise PayloadError(f"invalid Cap'n Proto LoggerMsg: {exc.reason}") from None
        except Exception as exc:  # the trust boundary: hostile bytes raise only PayloadError
            raise PayloadError(f"invalid Cap'n Proto LoggerMsg: {_first_line(exc)}") from None

    def _read(self, reader: Any, payload: bytes, packed: bool) -> LogRecord:
        get = reader._get
        values: list[Any]
        try:
            values = [get(name) for name in TEXT_FIELDS]
        except UnicodeDecodeError:
            values = self._read_replacing(payload, packed)
        values.insert(_LEVEL_INDEX, get("level").raw)
        return LogRecord(*values)

    def _read_replacing(self, payload: bytes, packed: bool) -> list[Any]:
        """Slow path for invalid UTF-8: read the fields as bytes and replace bad sequences."""
        if packed:
            return self._raw_texts(self._raw.from_bytes_packed(payload, **self._limits))
        with self._raw.from_bytes(payload, **self._limits) as raw:
            return self._raw_texts(raw)

    @staticmethod
    def _raw_texts(raw: Any) -> list[Any]:
        out: list[Any] = []
        for name in TEXT_FIELDS:
            data = bytes(raw._get(name))
            if data.endswith(b"\x00"):  # Text's NUL terminator
                data = data[:-1]
            elif raw._has(name):
                # Read as Text this is an error too; pycapnp merely failed to word it (the
                # offending byte is in its message and is not UTF-8).
                raise PayloadError("Message contains text that is not NUL-terminated")
            out.append(data.decode("utf-8", "replace"))
        return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # KJ messages start with "file.c++:123: failed: "; the rest is the useful part.
    return text.split("failed: ", 1)[-1][:200]
