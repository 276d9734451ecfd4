"""parse_line on lines made by the server's own formatters: text and JSON give the same fields."""

from __future__ import annotations

from log_server.core.format import format_json, format_text
from log_server.core.records import LogRecord
from log_server.history import parse_line

RECEIVED = "2026-12-07T12:00:00.000000+00:00"


def _record() -> LogRecord:
    return LogRecord(
        timestamp="2026-12-07T11:59:59.5+00:00",
        hostname="web 1",
        logger_name="payments",
        level=9,
        filename="pay.py",
        function_name="charge",
        line_number="42",
        message='card "declined"\nretry',
        module="pay",
        process_id="17",
        service_name="shop",
        attributes=(("order", "A 1"), ("user", "u7")),
    )


def test_text_line_fields() -> None:
    fields = parse_line(format_text(123, _record(), RECEIVED).encode(), "text")
    assert fields["seq"] == 123
    assert fields["timestamp"] == "2026-12-07T11:59:59.5+00:00"
    assert fields["hostname"] == "web 1"
    assert fields["logger_name"] == "payments"
    assert fields["level"] == "WARNING"
    assert fields["filename"] == "pay.py"
    assert fields["function_name"] == "charge"
    assert fields["line_number"] == "42"
    assert fields["message"] == 'card "declined"\nretry'
    assert fields["module"] == "pay"
    assert fields["process_id"] == "17"
    assert fields["service_name"] == "shop"
    assert fields["attributes"] == {"order": "A 1", "user": "u7"}


def test_json_line_and_autodetection() -> None:
    raw = format_json(5, _record(), RECEIVED).encode()
    fields = parse_line(raw, "auto")
    assert fields == parse_line(raw, "json")
    assert fields["seq"] == 5
    assert fields["service_name"] == "shop"
    assert fields["attributes"] == {"order": "A 1", "user": "u7"}
    assert fields["message"] == 'card "declined"\nretry'


def test_bare_message_without_extras() -> None:
    record = LogRecord(message="plain words here", level=3)
    fields = parse_line(format_text(1, record, RECEIVED).encode(), "text")
    assert fields["message"] == "plain words here"
    assert fields["level"] == "INFO"
    assert fields["timestamp"] == RECEIVED
    assert "attributes" not in fields
