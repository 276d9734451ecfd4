"""The one shape every accepted message takes, whichever protocol it came in on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum


class Level(IntEnum):
    """Same names and numbers in logger.capnp and log_service.proto."""

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


LEVEL_NAMES: tuple[str, ...] = tuple(level.name for level in Level)


def level_name(value: int) -> str:
    """Unknown numbers (a newer client's level) are kept visible, not rejected."""
    return LEVEL_NAMES[value] if 0 <= value < len(LEVEL_NAMES) else f"LEVEL{value}"


@dataclass(slots=True)
class LogRecord:
    """A log message as received. Field order is the schemas' field order (ordinals 0-15),
    so codecs can build records positionally."""

    timestamp: str = ""
    hostname: str = ""
    logger_name: str = ""
    module: str = ""
    level: int = Level.NOTSET
    filename: str = ""
    function_name: str = ""
    line_number: str = ""
    message: str = ""
    path_name: str = ""
    process_id: str = ""
    process_name: str = ""
    thread_id: str = ""
    thread_name: str = ""
    service_name: str = ""
    stack_trace: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    """Structured key/value pairs in the client's order (LoggerMsg @16, LogRequest 17)."""


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LogRecord))[:16]
"""The 16 built-in fields, in schema order (without `attributes`)."""

# Bounds on one message's attributes (docs/protocol.md). OpenTelemetry's SDKs default to 128
# attributes per record; a key is a name, not data; the total keeps one message's attributes
# to a fraction of the frame limit so that no single line is mostly attributes.
MAX_ATTRIBUTES = 128
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTES_BYTES = 64 * 1024
ATTRIBUTES_REFUSED_KEY = "attributes_refused"
"""The one attribute a message keeps when its attributes break a bound: the reason."""


def checked_attributes(pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The pairs, or, past a bound, one pair saying why they were refused: the message itself
    is still written (nothing lost), and the line shows the refusal where it happened."""
    reason = attributes_refusal(pairs)
    if reason is None:
        return tuple(pairs)
    return ((ATTRIBUTES_REFUSED_KEY, reason),)


def attributes_refusal(pairs: Sequence[tuple[str, str]]) -> str | None:
    if len(pairs) > MAX_ATTRIBUTES:
        return f"{len(pairs)} attributes (limit {MAX_ATTRIBUTES})"
    total = 0
    for key, value in pairs:
        key_bytes = len(key.encode("utf-8", "surrogatepass"))
        if key_bytes > MAX_ATTRIBUTE_KEY_BYTES:
            return f"a key of {key_bytes} bytes (limit {MAX_ATTRIBUTE_KEY_BYTES})"
        total += key_bytes + len(value.encode("utf-8", "surrogatepass"))
    if total > MAX_ATTRIBUTES_BYTES:
        return f"{total} bytes of attributes (limit {MAX_ATTRIBUTES_BYTES})"
    return None
