"""What every real OpenTelemetry SDK test sends, and the line it must become on disk (the
mapping of docs/protocol.md, "OpenTelemetry logs"), checked field by field.

Each SDK client sends one record: resource `service.name`/`host.name`, a scope name, WARN
severity, a string body, `code.*` and `thread.*` attributes, an exception, two plain
attributes (one an int), a fixed record time and a span's trace context.
"""

from __future__ import annotations

import json
from typing import Any

from support import RunningServer

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
TIME_UNIX_NANO = 1_700_000_000_123_456_789
TIMESTAMP = "2023-11-14T22:13:20.123456+00:00"


def otlp_line(server: RunningServer, body: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The one JSON line (`--format json`) whose message is `body`."""
    server.wait_for(lambda ls: any(body in line for line in ls), timeout_s)
    (line,) = [json.loads(ln) for ln in server.lines() if body in ln]
    assert isinstance(line, dict)
    return line


def check_fields(line: dict[str, Any], **expected: str) -> None:
    """Every named field as expected, and the built-in fields not named empty: nothing lands
    in a field the mapping does not send it to."""
    unnamed = {
        "module": "",
        "path_name": "",
        "process_id": "",
        "process_name": "",
    }
    for name, value in {**unnamed, **expected}.items():
        assert line[name] == value, f"{name}: {line[name]!r} != {value!r}"


def check_attributes(
    line: dict[str, Any], record: dict[str, str], resource: dict[str, str]
) -> None:
    """trace_id and span_id first, then the record's own attributes (without the ones mapped
    to fields), then `resource.`-prefixed ones; `record` and `resource` must all be there."""
    attributes: dict[str, str] = line["attributes"]
    keys = list(attributes)
    assert keys[:2] == ["trace_id", "span_id"], keys
    assert attributes["trace_id"] == TRACE_ID and attributes["span_id"] == SPAN_ID
    for key, value in record.items():
        assert attributes.get(key) == value, f"{key}: {attributes.get(key)!r} != {value!r}"
    for key, value in resource.items():
        got = attributes.get("resource." + key)
        assert got == value, f"resource.{key}: {got!r} != {value!r}"
    mapped = ("code.", "thread.", "exception.", "service.name", "host.name")
    assert not [k for k in keys if k.startswith(mapped)], "mapped attributes are not repeated"
    assert not [k for k in keys if k.startswith(("resource.service.name", "resource.host.name"))]
    last_record = max(keys.index(k) for k in record)
    first_resource = min(keys.index("resource." + k) for k in resource)
    assert last_record < first_resource, "record attributes before resource ones"
