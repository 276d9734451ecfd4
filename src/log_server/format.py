"""Record -> exactly one line of text, in the `text` or `json` format.

One message is always one line: every control character in any field is escaped, so a
client can neither forge other lines nor drive the terminal of someone tailing the file.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from log_server.core.records import FIELD_NAMES, LogRecord, level_name

LineFormatter = Callable[[int, LogRecord, str], str]
"""(sequence number, record, receive time) -> one line ending in a newline."""

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROL_CHARS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPE_TABLE = {
    code: _NAMED_ESCAPES.get(chr(code), f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    for code in _CONTROL_CHARS
}
# json.dumps escapes C0 controls itself; these it leaves raw, and some readers break on them.
_JSON_EXTRA_ESCAPES = {
    code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)
}

# Column widths of the text format (as in the server this one replaces); longer values are cut.
TIMESTAMP_WIDTH = 33
HOSTNAME_WIDTH = 12
LOGGER_WIDTH = 15
LEVEL_WIDTH = 8
FILENAME_WIDTH = 20
FUNCTION_WIDTH = 25
LINE_WIDTH = 6
SEQ_WIDTH = 10

_TEXT_LINE = (
    f"{{:>{SEQ_WIDTH}}} {{:<{TIMESTAMP_WIDTH}.{TIMESTAMP_WIDTH}}} "
    f"{{:<{HOSTNAME_WIDTH}.{HOSTNAME_WIDTH}}} {{:<{LOGGER_WIDTH}.{LOGGER_WIDTH}}} "
    f"{{:<{LEVEL_WIDTH}.{LEVEL_WIDTH}}} {{:<{FILENAME_WIDTH}.{FILENAME_WIDTH}}} "
    f"{{:<{FUNCTION_WIDTH}.{FUNCTION_WIDTH}}} {{:>{LINE_WIDTH}.{LINE_WIDTH}}} {{}}"
).format

# Extras appended as ` key=value` when non-empty, in this order; the stack trace is last.
_EXTRAS = (
    ("module", "module"),
    ("path", "path_name"),
    ("pid", "process_id"),
    ("process", "process_name"),
    ("tid", "thread_id"),
    ("thread", "thread_name"),
    ("service", "service_name"),
    ("stack", "stack_trace"),
)


def escape(text: str) -> str:
    """Escape control characters (C0, DEL, C1, U+2028/9) as `\\n`, `\\x1b`, `\\u2028`..."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPE_TABLE)


def _logfmt_value(text: str) -> str:
    text = escape(text)
    if text and " " not in text and '"' not in text and "=" not in text:
        return text
    return '"' + text.replace('"', '\\"') + '"'


def now_iso() -> str:
    """Receive time: ISO-8601, UTC, microseconds (as datetime.isoformat writes it).

    Taken once per read or call, so it is on the hot path: the date and time of the
    current second are formatted once per second."""
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    return f"{_utc_second(seconds)}.{micros:06d}+00:00"


@functools.lru_cache(maxsize=2)
def _utc_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_text(seq: int, r: LogRecord, received_at: str) -> str:
    line = _TEXT_LINE(
        seq,
        escape(r.timestamp) if r.timestamp else received_at,
        escape(r.hostname),
        escape(r.logger_name),
        level_name(r.level),
        escape(r.filename),
        escape(r.function_name),
        escape(r.line_number),
        escape(r.message),
    )
    extras = [
        f" {key}={_logfmt_value(value)}" for key, attr in _EXTRAS if (value := getattr(r, attr))
    ]
    if extras:
        line += "".join(extras)
    return line + "\n"


def format_json(seq: int, r: LogRecord, received_at: str) -> str:
    """JSON Lines: every field, plus `seq` (first, so a reader finds it cheaply) and
    `received_at`. json.dumps escapes control characters, so this is one line too."""
    obj: dict[str, object] = {"seq": seq, "received_at": received_at}
    for name in FIELD_NAMES:
        obj[name] = getattr(r, name)
    obj["level"] = level_name(r.level)
    if not r.timestamp:
        obj["timestamp"] = received_at
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if not line.isprintable():
        line = line.translate(_JSON_EXTRA_ESCAPES)
    return line + "\n"


FORMATTERS: dict[str, LineFormatter] = {"text": format_text, "json": format_json}


def parse_sequence(line: bytes) -> int | None:
    """The sequence number a line written by either formatter starts with, or None."""
    if line.startswith(b'{"seq":'):
        digits = line[7:].split(b",", 1)[0]
    else:
        parts = line.split(None, 1)
        digits = parts[0] if parts else b""
    return int(digits) if digits.isdigit() else None
