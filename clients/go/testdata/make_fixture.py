"""Writes vectors_fixture.json: a few cases in the format of schema/vectors/vectors.json
(docs: the lead's interop brief), packed by pycapnp, for developing the Go client before
the shared file existed. Run from the repository root: .venv/bin/python
clients/go/testdata/make_fixture.py. The shared file, when present, is the real test."""

import json
from pathlib import Path

import capnp

ROOT = Path(__file__).resolve().parents[3]
schema = capnp.SchemaParser().load(str(ROOT / "schema" / "logger.capnp"))
NAMES = {
    "logger_name": "loggerName", "function_name": "functionName", "line_number": "lineNumber",
    "path_name": "pathName", "process_id": "processId", "process_name": "processName",
    "thread_id": "threadId", "thread_name": "threadName", "service_name": "serviceName",
    "stack_trace": "stackTrace",
}
BASE = {
    "timestamp": "2026-12-01T10:00:00.000000+00:00", "hostname": "host1", "logger_name": "app",
    "module": "", "level": "INFO", "filename": "main.go", "function_name": "main",
    "line_number": "42", "message": "hello", "path_name": "", "process_id": "123",
    "process_name": "", "thread_id": "", "thread_name": "", "service_name": "svc",
    "stack_trace": "", "attributes": [{"key": "order_id", "value": "7"}],
}
CASES = {
    "plain_info": {},
    "all_empty": {k: "" for k in BASE if k not in ("level", "attributes")} | {"level": "NOTSET", "attributes": []},
    "unicode": {"message": "tab\there\nnew line \x1b[31m bidi \u202e emoji \U0001f600 \u2028",
                "attributes": [{"key": "k\u00e9", "value": "v\x00\x7f"}, {"key": "", "value": ""}]},
    "long": {"message": "x" * 8000, "stack_trace": "Traceback\n" * 100},
    "critical_attrs": {"level": "CRITICAL",
                       "attributes": [{"key": f"k{i}", "value": str(i)} for i in range(128)]},
}


def packed(fields):
    msg = schema.LoggerMsg.new_message()
    for key, value in fields.items():
        if key == "level":
            msg.level = value.lower()
        elif key == "attributes":
            items = msg.init("attributes", len(value))
            for item, attr in zip(items, value):
                item.key, item.value = attr["key"], attr["value"]
        elif value:
            setattr(msg, NAMES.get(key, key), value)
    return msg.to_bytes_packed().hex()


cases = []
for name, change in CASES.items():
    fields = BASE | change
    cases.append({"name": name, "fields": fields, "packed": packed(fields), "text": "", "json": ""})
out = Path(__file__).with_name("vectors_fixture.json")
out.write_text(json.dumps({"format": 1, "cases": cases, "frames": []}, indent=1) + "\n")
