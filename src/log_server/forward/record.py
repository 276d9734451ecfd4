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
from dataclasses import dataclass

from log_server.core.format import parse_sequence
from log_server.history.parse import parse_line

try:
    from log_server_native import forward_records as _native_records
except ImportError:  # the compiled decoder is not built: every line in Python
    _native_records = None

_HOSTNAME = b',"hostname":"'


@dataclass(frozen=True, slots=True)
class Records:
    """The records of a block of lines, in order: two lists rather than an object per line."""

    first: int  # the first line's sequence number
    last: int
    hostnames: list[str]
    values: list[bytes]
    gaps: list[tuple[int, int]]  # (first, last) sequence numbers missing between two lines


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


def records_of_block(block: bytes, last_seq: int, native: bool = True) -> Records | None:
    """The records of a block of whole lines after `last_seq`, skipping lines without a
    sequence number or not after the one before (as history/follower.py does); None if none."""
    result = _native_records(block, last_seq) if native and _native_records else None
    if result is None:
        return _python_records(block, last_seq)
    first, last, hostnames, values, gaps, declined = result
    for i in declined:  # left to Python: the value is the raw line
        hostnames[i], values[i] = record_of(values[i])
    return Records(first, last, hostnames, values, gaps) if values else None


def _python_records(block: bytes, last_seq: int) -> Records | None:
    seqs: list[int] = []
    hostnames: list[str] = []
    values: list[bytes] = []
    gaps: list[tuple[int, int]] = []
    for line in block.split(b"\n")[:-1]:  # the last piece is no whole line
        raw = line + b"\n"
        seq = parse_sequence(raw)
        if seq is None or seq <= last_seq:
            continue
        if seqs and seq > last_seq + 1:
            gaps.append((last_seq + 1, seq - 1))
        last_seq = seq
        seqs.append(seq)
        hostname, value = record_of(raw)
        hostnames.append(hostname)
        values.append(value)
    return Records(seqs[0], seqs[-1], hostnames, values, gaps) if seqs else None
