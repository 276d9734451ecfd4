"""One written line -> one Kafka record: (the key's hostname, the JSON value).

The value is the line's fields under the JSON format's names, with `seq` (history/parse.py),
so a consumer gets the same object whichever format the server writes. A JSON line already
is that object and is sent as it is, without being parsed.
"""

from __future__ import annotations

import json

from log_server.history.parse import parse_line

_HOSTNAME = b',"hostname":"'


def record_of(raw: bytes) -> tuple[str, bytes]:
    """(hostname, value) of a line as the writer wrote it, newline included."""
    if raw.startswith(b'{"seq":'):
        value = raw.rstrip(b"\n")
        start = value.find(_HOSTNAME)
        if start >= 0:
            start += len(_HOSTNAME)
            end = value.find(b'"', start)
            hostname = value[start:end]
            if end >= 0 and b"\\" not in hostname:
                return hostname.decode("utf-8", "replace"), value
        fields = parse_line(raw, "json")
        return str(fields.get("hostname", "")), value
    fields = parse_line(raw, "text")
    value = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    return str(fields.get("hostname", "")), value
