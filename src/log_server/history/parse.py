"""One line as the sinks wrote it (text or JSON, detected per line) -> the record's fields.

Names are those of the JSON format, so `tail --json` and a forwarder emit the same objects
whichever format the server writes. The text format's columns have fixed widths
(core/format.py), except the sequence number, level and line number, which widen.
"""

from __future__ import annotations

import json
import re

from log_server.core.format import (
    FILENAME_WIDTH,
    FUNCTION_WIDTH,
    HOSTNAME_WIDTH,
    LEVEL_WIDTH,
    LINE_WIDTH,
    LOGGER_WIDTH,
    TIMESTAMP_WIDTH,
)

# The text format's ` key=value` extras -> JSON field names; any other key is an attribute.
_EXTRA_FIELDS = {
    "module": "module",
    "path": "path_name",
    "pid": "process_id",
    "process": "process_name",
    "tid": "thread_id",
    "thread": "thread_name",
    "service": "service_name",
    "stack": "stack_trace",
}
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_EXTRA = re.compile(rf' ({_QUOTED}|[^ "=]+)=({_QUOTED}|[^ ]*)')
# `\\u` of a surrogate is no escape: the writer never makes one (a str of UTF-8 text holds no
# surrogate), so it is text a client sent, and a lone surrogate could not be encoded again.
_CODE = r"x[0-9a-f]{2}|u(?!d[89ab])[0-9a-f]{4}"
_UNESCAPE = re.compile(rf"\\({_CODE}|.)")
_NAMED = {"n": "\n", "r": "\r", "t": "\t"}


def _unquote(text: str) -> str:
    """A quoted value back to its text (the inverse of format.quoted)."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) > 1:
            return chr(int(code[1:], 16))
        return _NAMED.get(code, code)

    return _UNESCAPE.sub(one, text[1:-1])


_BARE_ESCAPE = re.compile(rf"\\({_CODE}|[nrt])")


def _unescape_bare(text: str) -> str:
    """A bare value's escaped controls back to characters. A backslash the text itself held is
    not escaped in a bare value, so a literal `\\n` in a message reads back as a newline."""
    if "\\" not in text:
        return text
    return _BARE_ESCAPE.sub(lambda m: _NAMED.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), text)


def parse_line(raw: bytes, line_format: str = "auto") -> dict[str, object]:
    """The fields of one line; `line_format` is `text`, `json` or `auto` (a JSON line starts
    with `{`). A line that is neither gives {"message": line}."""
    text = raw.decode("utf-8", "replace").rstrip("\n")
    if line_format == "json" or (line_format == "auto" and text.startswith("{")):
        try:
            fields = json.loads(text)
        except ValueError:
            return {"message": text}
        return fields if isinstance(fields, dict) else {"message": text}
    return _parse_text(text)


def _parse_text(text: str) -> dict[str, object]:
    stripped = text.lstrip(" ")
    digits = stripped.split(" ", 1)[0]
    if not digits.isdigit():
        return {"message": text}
    pos = len(text) - len(stripped) + len(digits) + 1
    fields: dict[str, object] = {"seq": int(digits)}

    def column(width: int) -> str:
        nonlocal pos
        value = text[pos : pos + width]
        pos += width + 1
        return value.rstrip(" ")

    fields["timestamp"] = column(TIMESTAMP_WIDTH)
    fields["hostname"] = column(HOSTNAME_WIDTH)
    fields["logger_name"] = column(LOGGER_WIDTH)
    level = text[pos:].split(" ", 1)[0]
    fields["level"] = level
    pos += max(LEVEL_WIDTH, len(level)) + 1
    fields["filename"] = column(FILENAME_WIDTH)
    fields["function_name"] = column(FUNCTION_WIDTH)
    # Right-aligned in LINE_WIDTH columns, wider when the number is longer; blank when unset.
    if text[pos : pos + LINE_WIDTH].strip(" "):
        line_number, _, rest = text[pos:].lstrip(" ").partition(" ")
    else:
        line_number, rest = "", text[pos + LINE_WIDTH + 1 :]
    fields["line_number"] = line_number
    if rest.startswith('"'):
        end = re.match(_QUOTED, rest)
        cut = end.end() if end else len(rest)
        fields["message"] = _unquote(rest[:cut])
        rest = rest[cut:]
    else:
        first = _EXTRA.search(" " + rest)
        cut = max(first.start() - 1, 0) if first else len(rest)
        fields["message"] = _unescape_bare(rest[:cut])
        rest = rest[cut:]
    attributes: dict[str, str] = {}
    for match in _EXTRA.finditer(rest):
        key = _unquote(match.group(1))
        value = match.group(2)
        value = _unquote(value) if value.startswith('"') else _unescape_bare(value)
        if match.group(1) in _EXTRA_FIELDS:
            fields[_EXTRA_FIELDS[match.group(1)]] = value
        else:
            attributes[key] = value
    if attributes:
        fields["attributes"] = attributes
    return fields
