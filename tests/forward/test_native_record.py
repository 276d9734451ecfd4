"""The compiled record builder (native/src/record.rs) gives the Python path's records, byte for
byte: lines made by the server's own formatters from any field text, and lines it never makes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from log_server.core.format import format_json, format_text
from log_server.core.records import LogRecord
from log_server.forward.record import Records, record_of, records_of_block

native = pytest.importorskip(
    "log_server_native",
    reason="the compiled decoder (native/) is not installed; `make test` builds it",
)

RECEIVED = "2026-12-08T12:00:00.000000+00:00"
TEXT_FIELDS = (
    "timestamp hostname logger_name module filename function_name line_number message "
    "path_name process_id process_name thread_id thread_name service_name stack_trace"
).split()

hostile = st.sampled_from(
    ["", "x" * 50, "a\nb\r\x1b[31m\x00\x7f\x85\u2028", 'q"uo=te d', "\\path\\C:", "ünï✓"]
    + ["\u202eevil\u200b\ufeff", '"lead', "tail\\", "pid", "k=v x=y", "1234567890", " "]
    + ["\\n", "\\x41", "\\u00e9", '\\"', "a=", "=b", " k=v", '"', '""', "\\", "\t", "  two"]
    + ["\ud7ff\ue000", "€" * 40, "module", "stack", 'x="y"', "é=é", "12 34", "\\ud800"]
)
any_text = st.text(max_size=40) | hostile | st.lists(hostile, max_size=4).map("".join)
attributes = st.lists(st.tuples(any_text, any_text), max_size=6).map(tuple)
records = st.builds(
    LogRecord,
    **{name: any_text for name in TEXT_FIELDS},
    level=st.integers(0, 60),
    attributes=attributes,
)


def check(line: bytes) -> None:
    native_record = native.forward_record(line)
    if native_record is not None:
        assert native_record == record_of(line + b"\n"), line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records, seq=st.integers(1, 10**15), json=st.booleans())
def test_lines_the_server_writes(record: LogRecord, seq: int, json: bool) -> None:
    line = (format_json if json else format_text)(seq, record, RECEIVED).encode()[:-1]
    check(line)
    # Only a JSON line whose hostname has an escape is left to Python.
    assert native.forward_record(line) is not None or (json and b"\\" in line)


@settings(max_examples=400, deadline=None)
@given(
    line=st.text(alphabet=st.sampled_from(' 0123"\\=xunrt\té€\x00ab'), max_size=120)
    | st.binary(max_size=120).filter(lambda b: b"\n" not in b)
    | st.builds(
        lambda record, cut, junk: format_text(7, record, RECEIVED)[:cut] + junk,
        records,
        st.integers(0, 200),
        st.text(max_size=30),
    )
)
def test_lines_it_never_writes(line: Any) -> None:
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    check(raw.replace(b"\n", b" "))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.tuples(records, st.integers(1, 3)), max_size=12),
    start=st.integers(0, 10**12),
    last_seq=st.integers(0, 20),
    tail=st.binary(max_size=20).filter(lambda b: b"\n" not in b),
)
def test_blocks_as_the_follower_reads_them(
    lines: list[tuple[LogRecord, int]], start: int, last_seq: int, tail: bytes
) -> None:
    """Sequence numbers with gaps, lines without one, a line not after the one before, and an
    unfinished last line: the same records and gaps both ways."""
    parts, seq = [], start
    for record, step in lines:
        seq += step
        parts.append(format_text(seq, record, RECEIVED).encode())
        parts.append(b"no sequence number\n" if step == 3 else b"")
        parts.append(b"         1 old line\n" if step == 2 else b"")
    block = b"".join(parts) + tail
    got = records_of_block(block, start + last_seq)
    want = records_of_block(block, start + last_seq, native=False)
    assert got == want


def test_declined_lines_come_back_raw_for_python() -> None:
    escaped_host = b'{"seq":5,"hostname":"a\\"b","message":"m"}\n'
    invalid_utf8 = format_text(7, LogRecord(message="caf\xe9"), RECEIVED).encode()
    invalid_utf8 = invalid_utf8.replace("caf\xe9".encode(), b"caf\xe9")
    block = escaped_host + invalid_utf8
    assert native.forward_records(block, 0) == (
        5,
        7,
        [None, None],
        [escaped_host, invalid_utf8],
        [(6, 6)],
        [0, 1],
    )
    (host_a, value_a), (host_b, value_b) = record_of(escaped_host), record_of(invalid_utf8)
    assert records_of_block(block, 0) == Records(
        5, 7, [host_a, host_b], [value_a, value_b], [(6, 6)]
    )


def test_a_sequence_number_too_long_for_the_native_path() -> None:
    line = format_text(10**19, LogRecord(message="big"), RECEIVED).encode()
    assert native.forward_records(line, 0) is None
    hostname, value = record_of(line)
    assert records_of_block(line, 0) == Records(10**19, 10**19, [hostname], [value], [])


def test_a_block_of_nothing_new() -> None:
    block = format_text(3, LogRecord(message="old"), RECEIVED).encode() + b"partial"
    assert records_of_block(block, 3) is None
    assert records_of_block(block, 3, native=False) is None
