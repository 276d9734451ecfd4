"""The one shape every accepted message takes, whichever protocol it came in on."""

from __future__ import annotations

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


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LogRecord))
