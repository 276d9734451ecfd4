"""Formatters: fixed columns, extras, escaping (one message is always one line), JSON Lines."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from log_server.core.format import (
    FILENAME_WIDTH,
    TIMESTAMP_WIDTH,
    escape,
    format_json,
    format_text,
    parse_sequence,
)
from log_server.core.records import FIELD_NAMES, Level, LogRecord

RECEIVED = "2026-11-27T12:00:00.000000+00:00"


def test_text_columns_are_fixed_width() -> None:
    record = LogRecord(
        timestamp="2026-11-27T10:00:00.000001+00:00",
        hostname="host",
        logger_name="app",
        level=Level.INFO,
        filename="a.py",
        function_name="main",
        line_number="7",
        message="hello world",
    )
    line = format_text(42, record, RECEIVED)
    assert line == (
        "        42 2026-11-27T10:00:00.000001+00:00  host         app             INFO     "
        "a.py                 main                           7 hello world\n"
    )


def test_long_values_are_cut_to_their_column() -> None:
    record = LogRecord(filename="f" * 50, message="m" * 500)
    line = format_text(1, record, RECEIVED)
    assert "f" * FILENAME_WIDTH + " " in line
    assert "f" * (FILENAME_WIDTH + 1) not in line
    assert line.endswith("m" * 500 + "\n")


def test_empty_timestamp_becomes_receive_time() -> None:
    line = format_text(1, LogRecord(message="x"), RECEIVED)
    assert line[11 : 11 + TIMESTAMP_WIDTH].rstrip() == RECEIVED


def test_extras_follow_in_order_and_stack_trace_is_last() -> None:
    record = LogRecord(
        message="boom",
        module="mod",
        path_name="/p a/x.py",
        process_id="9",
        process_name="proc",
        thread_id="77",
        thread_name="T",
        service_name="svc",
        stack_trace='Traceback:\n  File "x"\nValueError',
    )
    line = format_text(1, record, RECEIVED)
    assert line.endswith(
        ' boom module=mod path="/p a/x.py" pid=9 process=proc tid=77 thread=T service=svc '
        'stack="Traceback:\\n  File \\"x\\"\\nValueError"\n'
    )


def test_hostile_fields_cannot_forge_lines_or_drive_a_terminal() -> None:
    record = LogRecord(
        hostname="h\nforged",
        message="a\r\n     2 fake line\x1b[2J\x00\u2028end",
        stack_trace="x\x85y",
    )
    line = format_text(1, record, RECEIVED)
    assert line.count("\n") == 1 and line.endswith("\n")
    assert "\x1b" not in line and "\r" not in line and "\x00" not in line
    assert "a\\r\\n     2 fake line\\x1b[2J\\x00\\u2028end" in line
    assert "stack=x\\x85y" in line


def test_escape_leaves_printable_text_alone() -> None:
    assert escape("plain text, ünïcødé ✓") == "plain text, ünïcødé ✓"
    assert escape("tab\there") == "tab\\there"
    assert escape("\x7f") == "\\x7f"


def test_unknown_level_number_stays_visible() -> None:
    assert " LEVEL42 " in format_text(1, LogRecord(level=42), RECEIVED)


def test_json_line_has_every_field_seq_and_receive_time() -> None:
    record = LogRecord(message="hi\nthere", level=Level.ERROR, hostname="h")
    line = format_json(7, record, RECEIVED)
    assert line.count("\n") == 1
    obj = json.loads(line)
    assert list(obj)[:2] == ["seq", "received_at"]
    assert obj["seq"] == 7 and obj["received_at"] == RECEIVED
    assert set(FIELD_NAMES) <= set(obj)
    assert obj["message"] == "hi\nthere"
    assert obj["level"] == "ERROR"
    assert obj["timestamp"] == RECEIVED


def test_parse_sequence_reads_both_formats() -> None:
    assert parse_sequence(format_text(123, LogRecord(), RECEIVED).encode()) == 123
    assert parse_sequence(format_json(456, LogRecord(), RECEIVED).encode()) == 456
    assert parse_sequence(b"not a log line") is None
    assert parse_sequence(b"") is None


text_fields = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@given(st.builds(LogRecord, *([text_fields] * 4), st.integers(0, 20), *([text_fields] * 11)))
def test_any_record_is_exactly_one_line_in_both_formats(record: LogRecord) -> None:
    for formatter in (format_text, format_json):
        line = formatter(1, record, RECEIVED)
        assert line.endswith("\n")
        assert len(line.splitlines()) == 1, line
        assert not any(c in line[:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def test_now_iso_is_utc_iso8601_with_microseconds() -> None:
    from datetime import UTC, datetime

    from log_server.core.clock import now_iso

    before = datetime.now(UTC)
    text = now_iso()
    after = datetime.now(UTC)
    assert len(text) == len("2026-11-27T12:00:00.000000+00:00") and text.endswith("+00:00")
    assert before.replace(microsecond=0) <= datetime.fromisoformat(text) <= after


def _tail(line: str) -> str:
    """What follows the fixed columns: the message and the key=value pairs."""
    return line.split("     7 ", 1)[1]


def test_attributes_follow_the_extras_in_the_clients_order() -> None:
    record = LogRecord(
        line_number="7",
        message="paid",
        service_name="shop",
        attributes=(("order_id", "7"), ("user", "ann lee"), ("empty", "")),
    )
    assert _tail(format_text(1, record, RECEIVED)) == (
        'paid service=shop order_id=7 user="ann lee" empty=""\n'
    )


def test_hostile_attribute_keys_and_values_cannot_forge_keys_or_lines() -> None:
    record = LogRecord(
        line_number="7",
        message="m",
        attributes=(
            ("a b", "x"),
            ("k=v", "1"),
            ("", "e"),
            ('q"', "v"),
            ("pid", "1"),
            ("nl\nkey", "v\nnext 2 line"),
            ("ok", 'x" forged=1'),
            ("ünï", "v"),
        ),
    )
    assert _tail(format_text(1, record, RECEIVED)) == (
        'm "a b"=x "k=v"=1 ""=e "q\\""=v "pid"=1 "nl\\nkey"="v\\nnext 2 line" '
        'ok="x\\" forged=1" "ünï"=v\n'
    )


def test_attributes_in_json_keep_order_and_the_last_value_of_a_repeated_key() -> None:
    record = LogRecord(attributes=(("b", "1"), ("a", "2"), ("b", "3")))
    line = format_json(5, record, RECEIVED)
    assert json.loads(line)["attributes"] == {"b": "3", "a": "2"}
    assert line.index('"b"') < line.index('"a"')
    assert "attributes" not in json.loads(format_json(5, LogRecord(), RECEIVED))


def test_a_message_cannot_forge_the_extras() -> None:
    """Issue 14 item 17: `pid=5` inside a message looked like the built-in extra."""
    line = format_text(1, LogRecord(line_number="7", message="hi pid=5"), RECEIVED)
    assert _tail(line) == '"hi pid=5"\n'
    assert _tail(format_text(1, LogRecord(line_number="7", message='"x'), RECEIVED)) == '"\\"x"\n'


def test_a_trailing_backslash_does_not_break_the_quoting() -> None:
    """Issue 14 item 17: `"a b\\"` read as an escaped quote."""
    record = LogRecord(line_number="7", message="m", path_name="C:\\my dir\\")
    assert _tail(format_text(1, record, RECEIVED)) == 'm path="C:\\\\my dir\\\\"\n'
    bare = LogRecord(line_number="7", message="m", path_name="C:\\dir\\")
    assert _tail(format_text(1, bare, RECEIVED)) == "m path=C:\\dir\\\n"


def test_bidi_and_zero_width_characters_are_escaped() -> None:
    """Issue 14 item 17: they reorder or hide text in a terminal or editor."""
    assert escape("a\u202eb\u200bc\ufeffd\u2066") == "a\\u202eb\\u200bc\\ufeffd\\u2066"
    obj = format_json(1, LogRecord(message="\u202e"), RECEIVED)
    assert "\\u202e" in obj and "\u202e" not in obj


def test_numbers_are_never_cut() -> None:
    """Issue 14 items 17 and 19: level 2147483647 was shown as LEVEL214, a 10-digit line
    number as its first 6 digits."""
    line = format_text(1, LogRecord(level=2147483647, line_number="1234567890"), RECEIVED)
    assert " LEVEL2147483647 " in line
    assert " 1234567890 " in line
