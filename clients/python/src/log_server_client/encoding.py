"""Log fields -> a TCP frame: 4-byte big-endian length + packed Cap'n Proto `LoggerMsg`.

Also the defaults every message gets (host, process, thread, call time), so that all the
client classes fill them the same way.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import IntEnum
from importlib import resources
from typing import Any

import capnp


class Level(IntEnum):
    """The server's levels (same numbers in logger.capnp and log_service.proto)."""

    NOTSET = 0
    DEBUG = 1
    STREAM = 2
    INFO = 3
    LOGON = 4
    LOGOUT = 5
    TRADE = 6
    SCHEDULE = 7
    REPORT = 8
    WARNING = 9
    ERROR = 10
    CRITICAL = 11


# Keyword names accepted by log(), and the Cap'n Proto field each one fills.
FIELD_NAMES = {
    "timestamp": "timestamp",
    "hostname": "hostname",
    "logger_name": "loggerName",
    "module": "module",
    "filename": "filename",
    "function_name": "functionName",
    "line_number": "lineNumber",
    "path_name": "pathName",
    "process_id": "processId",
    "process_name": "processName",
    "thread_id": "threadId",
    "thread_name": "threadName",
    "service_name": "serviceName",
    "stack_trace": "stackTrace",
}

_length = struct.Struct(">I").pack
_HOSTNAME = socket.gethostname()


def to_level(level: Level | int | str) -> Level:
    """`Level.INFO`, `3`, `"info"` or `"INFO"`."""
    if isinstance(level, str):
        try:
            return Level[level.upper()]
        except KeyError:
            raise ValueError(f"unknown level {level!r}; one of {[m.name for m in Level]}") from None
    return Level(level)


def now_iso() -> str:
    """The call time, ISO-8601 UTC with microseconds (the server's own format)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_fields() -> dict[str, str]:
    """Host, process and thread of the caller, as the server's columns want them."""
    thread = threading.current_thread()
    mp = sys.modules.get("multiprocessing")
    process_name = mp.current_process().name if mp is not None else "MainProcess"
    return {
        "timestamp": now_iso(),
        "hostname": _HOSTNAME,
        "process_id": str(os.getpid()),
        "process_name": process_name,
        "thread_id": str(thread.ident),
        "thread_name": thread.name,
    }


def message_fields(logger_name: str, service_name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The defaults, the client's logger and service names, then the caller's fields."""
    values: dict[str, Any] = default_fields()
    if logger_name:
        values["logger_name"] = logger_name
    if service_name:
        values["service_name"] = service_name
    values.update(fields)
    return values


Attributes = Mapping[str, Any] | Iterable[tuple[str, Any]]
"""Structured key/value pairs: a mapping or a sequence of pairs; order is kept, repeated keys
too (a sequence); keys and values are made text with str()."""


def attribute_pairs(attributes: Attributes | None) -> list[tuple[str, str]]:
    """The pairs in order, as text; [] for None or nothing."""
    if not attributes:
        return []
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    return [(lossy_text(key), lossy_text(value)) for key, value in items]


def lossy_text(value: Any) -> str:
    """str(value), valid UTF-8: lone surrogates (undecodable bytes that Python kept with
    `surrogateescape`, from argv or file names) become their bytes again, decoded with U+FFFD
    for what is not UTF-8, as the server does with raw bytes. The compiled encoder does the
    same, so both give the same lines."""
    text = value if type(value) is str else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "replace")
    return text


def _load_schema() -> tuple[Any, Any]:
    """With a parser of our own: a program that also loads the server's copy of this schema
    (same file id) through pycapnp's global parser would otherwise abort."""
    parser = capnp.SchemaParser()
    schema_file = resources.files("log_server_client") / "schema" / "logger.capnp"
    with resources.as_file(schema_file) as path:
        return parser, parser.load(str(path))


# The 15 Text fields of LoggerMsg in schema order, and the log() keyword of each.
TEXT_FIELDS = (
    "timestamp",
    "hostname",
    "loggerName",
    "module",
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
KEYWORDS = tuple({v: k for k, v in FIELD_NAMES.items()}.get(f, f) for f in TEXT_FIELDS)


EncodeTexts = Callable[..., bytes]
"""(level number, the 15 Text fields in schema order[, (key, value) pairs]) -> frame."""


class FrameEncoder:
    """Builds frames. With the compiled module of the server repository installed
    (`log_server_native`, optional) one call does it all; otherwise pycapnp, with fields
    set one by one (`_set`), far cheaper than pycapnp's `new_message(**fields)`."""

    encode_texts: EncodeTexts

    def __init__(self, native: bool = True) -> None:
        encode_frame = _native_encoder() if native else None
        if encode_frame is not None:
            self.encode_texts = encode_frame
        else:
            self._parser, schema = _load_schema()
            self._new = schema.LoggerMsg.new_message
            self.encode_texts = self._encode_with_pycapnp

    def encode(
        self,
        level: Level,
        message: str,
        fields: dict[str, Any],
        attributes: Attributes | None = None,
    ) -> bytes:
        unknown = fields.keys() - FIELD_NAMES.keys()
        if unknown:
            raise TypeError(f"unknown log field(s) {sorted(unknown)}; known: {list(FIELD_NAMES)}")
        texts = tuple(message if k == "message" else fields.get(k) for k in KEYWORDS)
        if attributes:
            return self.encode_texts(int(level), texts, attribute_pairs(attributes))
        return self.encode_texts(int(level), texts)

    def _encode_with_pycapnp(
        self,
        level: int,
        texts: tuple[Any, ...],
        attributes: Iterable[tuple[Any, Any]] | None = None,
    ) -> bytes:
        """`texts`: the 15 Text fields in schema order; None and "" are left unset, other
        values made str (see lossy_text for text that is not valid UTF-8)."""
        msg = self._new()
        put = msg._set
        put("level", level)
        for name, value in zip(TEXT_FIELDS, texts, strict=True):
            if value or value == 0:  # skips None and "", keeps 0
                text = value if type(value) is str else str(value)
                try:
                    put(name, text)
                except UnicodeEncodeError:
                    put(name, lossy_text(text))
        if attributes:
            pairs = attribute_pairs(attributes)
            if pairs:
                entries = msg.init("attributes", len(pairs))
                for entry, (key, value) in zip(entries, pairs, strict=True):
                    entry.key = key
                    entry.value = value
        payload: bytes = msg.to_bytes_packed()
        return _length(len(payload)) + payload


def _native_encoder() -> EncodeTexts | None:
    """The compiled encoder, if installed and recent enough to take attributes."""
    try:
        from log_server_native import encode_frame
    except ImportError:
        return None
    try:
        encode_frame(0, (None,) * len(TEXT_FIELDS), [("k", "v")])
    except TypeError:  # a build that predates attributes
        return None
    return encode_frame  # type: ignore[no-any-return]


def hello_frame(
    from_name: str, from_host: str, from_address: str, to_address: str, from_public_ip: str = ""
) -> bytes:
    """The HelloMsg the original project's server requires as a connection's first frame:
    standard (unpacked) encoding, unlike every LoggerMsg frame after it. Our server
    recognises it by its shape and ignores it."""
    global _hello_schema
    if _hello_schema is None:
        _hello_schema = _load_schema()
    msg = _hello_schema[1].HelloMsg.new_message()
    msg.fromName = from_name
    msg.fromHost = from_host
    msg.fromAddress = from_address
    msg.toAddress = to_address
    msg.fromPublicIP = from_public_ip
    payload: bytes = msg.to_bytes()
    return _length(len(payload)) + payload


_hello_schema: tuple[Any, Any] | None = None
