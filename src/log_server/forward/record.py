"""Written lines -> Kafka records: (the key's hostname, the JSON value).

The value is the line's fields under the JSON format's names, with `seq` (history/parse.py),
so a consumer gets the same object whichever format the server writes. A JSON line already
is that object and is sent as it is, without being parsed.

A block of lines is done by the compiled decoder when it is installed
(`log_server_native.forward_records`, native/src/record.rs: ~10 µs of Python a text line
otherwise); it hands back the lines it leaves to this module (invalid UTF-8, escaped JSON
hostnames and the like), and gives byte-identical values (tests/forward/test_native_record.py).
"""

from __future__ import annotations

import json

from log_server.core.format import parse_sequence
from log_server.history.parse import parse_line

try:
    from log_server_native import forward_records as _native_records
except ImportError:  # the compiled decoder is not built: every line in Python
    _native_records = None

_HOSTNAME = b',"hostname":"'

#: (seq, hostname, value) of each line, in order.
Records = list[tuple[int, str, bytes]]
#: (first, last) sequence numbers missing between two lines of a block.
Gaps = list[tuple[int, int]]


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


def records_of_block(block: bytes, last_seq: int, native: bool = True) -> tuple[Records, Gaps]:
    """The records of a block of whole lines after `last_seq`, skipping lines without a
    sequence number or not after the one before (as history/follower.py does)."""
    result = _native_records(block, last_seq) if native and _native_records else None
    if result is None:
        return _python_records(block, last_seq)
    records, gaps = result
    for i, (seq, hostname, value) in enumerate(records):
        if hostname is None:  # left to Python: `value` is the raw line
            records[i] = (seq, *record_of(value))
    return records, gaps


def _python_records(block: bytes, last_seq: int) -> tuple[Records, Gaps]:
    records: Records = []
    gaps: Gaps = []
    for line in block.split(b"\n")[:-1]:  # the last piece is no whole line
        raw = line + b"\n"
        seq = parse_sequence(raw)
        if seq is None or seq <= last_seq:
            continue
        if records and seq > records[-1][0] + 1:
            gaps.append((records[-1][0] + 1, seq - 1))
        last_seq = seq
        records.append((seq, *record_of(raw)))
    return records, gaps
