"""Record -> exactly one line of text, in the `text` or `json` format.

One message is always one line: every control character in any field is escaped, so a
client can neither forge other lines nor drive the terminal of someone tailing the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from log_server.core.records import FIELD_NAMES, LogRecord, level_name

LineFormatter = Callable[[int, LogRecord, str], str]
"""(sequence number, record, receive time) -> one line ending in a newline."""

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Controls, line separators, and the invisible characters that reorder or hide text (bidi
# controls, zero-width characters; "Trojan Source", CVE-2021-42574): a reader of the file must
# see what is there.
INVISIBLE_CHARS = (
    0x061C,
    0x180E,
    *range(0x200B, 0x2010),
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2065),
    *range(0x2066, 0x2070),
    0xFEFF,
    *range(0xFFF9, 0xFFFC),
)
_CONTROL_CHARS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *INVISIBLE_CHARS]
_ESCAPE_TABLE = {
    code: _NAMED_ESCAPES.get(chr(code), f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    for code in _CONTROL_CHARS
}
# json.dumps escapes C0 controls itself; these it leaves raw, and some readers break on them.
_JSON_EXTRA_ESCAPES = {
    code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *INVISIBLE_CHARS)
}

# Column widths of the text format (as in the server this one replaces). Longer text is cut
# in the timestamp, hostname, logger, filename and function columns; the level and line
# number columns widen instead, so that a number is never shown wrong.
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
    f"{{:<{LEVEL_WIDTH}}} {{:<{FILENAME_WIDTH}.{FILENAME_WIDTH}}} "
    f"{{:<{FUNCTION_WIDTH}.{FUNCTION_WIDTH}}} {{:>{LINE_WIDTH}}} {{}}"
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
_EXTRA_KEYS = frozenset(key for key, _ in _EXTRAS)
# A key written bare: printable ASCII without the characters logfmt gives a meaning to.
_BARE_KEY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('"=\\')


def escape(text: str) -> str:
    """Escape control characters (C0, DEL, C1, U+2028/9) as `\\n`, `\\x1b`, `\\u2028`..."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPE_TABLE)


def quoted(text: str) -> str:
    """`"..."` with `\\` and `\"` escaped as well as the controls: unambiguous to a parser,
    wherever the quotes and backslashes in the text are."""
    return '"' + escape(text.replace("\\", "\\\\")).replace('"', '\\"') + '"'


def _logfmt_value(text: str) -> str:
    """Bare when it holds no space, quote or `=` (so no key can be forged), else quoted."""
    escaped = escape(text)
    if escaped and " " not in escaped and '"' not in escaped and "=" not in escaped:
        return escaped
    return quoted(text)


def _attribute_value(text: str) -> str:
    """As an extra's value, but an empty one is shown (`key=""`): the key was given."""
    return _logfmt_value(text) if text else '""'


def _logfmt_key(key: str) -> str:
    """An attribute's key, bare only when it cannot be mistaken for anything else: a built-in
    extra's name, or a key with spaces, quotes, `=`, controls or non-ASCII, is quoted."""
    if key and key not in _EXTRA_KEYS and _BARE_KEY_CHARS.issuperset(key):
        return key
    return quoted(key)


def _message(text: str) -> str:
    """The message, bare unless it could be read as the extras after it (an `=`) or as
    quoted (a leading quote)."""
    if "=" in text or text.startswith('"'):
        return quoted(text)
    return escape(text)


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
        _message(r.message),
    )
    extras = [
        f" {key}={_logfmt_value(value)}" for key, attr in _EXTRAS if (value := getattr(r, attr))
    ]
    if r.attributes:
        extras += [f" {_logfmt_key(k)}={_attribute_value(v)}" for k, v in r.attributes]
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
    if r.attributes:
        # A repeated key keeps its first position and its last value, as a dict does.
        obj["attributes"] = dict(r.attributes)
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
