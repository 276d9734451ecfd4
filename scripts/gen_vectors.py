"""`make gen` (vectors): schema/vectors/vectors.json, the shared test vectors of every client.

Each case is a message's fields with the lines the server writes for it (text and JSON), from
the server's reference path (pycapnp + format.py); each frame is raw bytes on a TCP
connection with the lines and the refusal the server gives. The format is described in
schema/vectors/README.md. Run it after a change to the schema or to the line format; it says
which cases changed. tests/protocol/test_vectors.py replays the file through both decoders
and fails when it is stale.
"""

from __future__ import annotations

import json
import struct
import sys
import warnings
from pathlib import Path
from typing import Any

import capnp

from log_server.core.format import FORMATTERS
from log_server.core.records import FIELD_NAMES, MAX_ATTRIBUTES, Level, LogRecord
from log_server.protocol.connection import PythonConnectionDecoder

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "schema" / "vectors" / "vectors.json"
# Stands for the receive time while generating: as long as a real one, so columns line up.
_RECEIVED_SENTINEL = "9999-12-31T23:59:59.999999+00:00"
SEQ_PLACEHOLDER = "{seq}"
RECEIVED_PLACEHOLDER = "{received_at}"
_SEQ_SENTINEL = 8_888_888_881
_CAPNP_NAMES = {
    "logger_name": "loggerName",
    "function_name": "functionName",
    "line_number": "lineNumber",
    "path_name": "pathName",
    "process_id": "processId",
    "process_name": "processName",
    "thread_id": "threadId",
    "thread_name": "threadName",
    "service_name": "serviceName",
    "stack_trace": "stackTrace",
}

TIMESTAMP = "2026-12-01T10:00:00.000001+00:00"
BASE = {
    "timestamp": TIMESTAMP,
    "hostname": "build-7",
    "logger_name": "app",
    "module": "",
    "level": "INFO",
    "filename": "main.py",
    "function_name": "run",
    "line_number": "42",
    "message": "hello",
    "path_name": "",
    "process_id": "4242",
    "process_name": "",
    "thread_id": "",
    "thread_name": "",
    "service_name": "",
    "stack_trace": "",
    "attributes": [],
}


def _attrs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs]


def case_fields() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = [("plain", {})]
    cases += [(f"level_{level.name.lower()}", {"level": level.name}) for level in Level]
    cases += [
        ("empty_message", {"message": ""}),
        ("empty_timestamp_is_receive_time", {"timestamp": ""}),
        ("all_fields_empty", {name: "" for name in FIELD_NAMES if name != "level"}),
        (
            "every_extra",
            {
                "module": "shop.pay",
                "path_name": "/srv/shop/pay.py",
                "process_id": "77",
                "process_name": "MainProcess",
                "thread_id": "140",
                "thread_name": "worker 1",
                "service_name": "shop",
                "stack_trace": 'Traceback:\n  File "pay.py", line 3\nValueError: no',
            },
        ),
        ("control_characters", {"message": "a\nb\rc\td\x00e\x1b[31mf\x7fg\x85h\u2028i"}),
        ("bidi_and_zero_width", {"message": "abc\u202edcb\u200b\ufeff\u2066x"}),
        ("non_ascii", {"message": "Grüße, 世界 ✓ 🚀", "hostname": "höst-ñ"}),
        ("message_with_equals", {"message": "user=ann logged in pid=5"}),
        ("message_leading_quote", {"message": '"quoted" start'}),
        ("trailing_backslash", {"path_name": "C:\\my dir\\", "message": "ends\\"}),
        (
            "column_cuts",
            {
                "hostname": "h" * 30,
                "logger_name": "l" * 30,
                "filename": "f" * 30,
                "function_name": "g" * 40,
                "timestamp": "t" * 40,
            },
        ),
        ("numbers_not_cut", {"line_number": "1234567890"}),
        ("long_message", {"message": "long " * 13_000}),
        ("attributes", {"attributes": _attrs(("order_id", "7"), ("user", "ann lee"))}),
        ("attribute_empty_value", {"attributes": _attrs(("flag", ""))}),
        ("attribute_repeated_key", {"attributes": _attrs(("k", "1"), ("j", "2"), ("k", "3"))}),
        (
            "attribute_hostile_keys",
            {
                "attributes": _attrs(
                    ("a b", "1"),
                    ("k=v", "2"),
                    ("", "3"),
                    ('q"', "4"),
                    ("pid", "5"),
                    ("nl\nkey", "6"),
                    ("ünï", "7"),
                )
            },
        ),
        (
            "attribute_hostile_values",
            {"attributes": _attrs(("v", 'x" forged=1'), ("nl", "a\nb"), ("bs", "tail\\ x"))},
        ),
        (
            "attributes_at_the_limit",
            {"attributes": _attrs(*[(f"k{i}", str(i)) for i in range(MAX_ATTRIBUTES)])},
        ),
        (
            "attributes_past_the_limit",
            {"attributes": _attrs(*[(f"k{i}", str(i)) for i in range(MAX_ATTRIBUTES + 1)])},
        ),
    ]
    return [(name, {**BASE, **changes}) for name, changes in cases]


def record_of(fields: dict[str, Any]) -> LogRecord:
    values = {name: fields[name] for name in FIELD_NAMES}
    values["level"] = Level[fields["level"]]
    pairs = tuple((a["key"], a["value"]) for a in fields["attributes"])
    from log_server.core.records import checked_attributes

    return LogRecord(**values, attributes=checked_attributes(pairs))


def _placeholders(line: str) -> str:
    line = line.replace(_RECEIVED_SENTINEL, RECEIVED_PLACEHOLDER)
    if line.startswith('{"seq":'):
        return line.replace(f'"seq":{_SEQ_SENTINEL},', f'"seq":{SEQ_PLACEHOLDER},', 1)
    return SEQ_PLACEHOLDER + line[10:] if line.startswith(str(_SEQ_SENTINEL)) else line


def _lines(fmt: str, record: LogRecord) -> str:
    return _placeholders(FORMATTERS[fmt](_SEQ_SENTINEL, record, _RECEIVED_SENTINEL))


class _Encoder:
    def __init__(self) -> None:
        self.schema: Any = capnp.SchemaParser().load(str(ROOT / "schema" / "logger.capnp"))
        raw_path = ROOT / "src" / "log_server" / "protocol" / "logger_raw.capnp"
        self.raw: Any = capnp.SchemaParser().load(str(raw_path))

    def message(self, fields: dict[str, Any], packed: bool = True) -> bytes:
        values: dict[str, Any] = {_CAPNP_NAMES.get(k, k): v for k, v in fields.items() if v}
        values["level"] = fields["level"].lower()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            msg = self.schema.LoggerMsg.new_message(**values)
            return bytes(msg.to_bytes_packed() if packed else msg.to_bytes())

    def raw_message(self, **values: Any) -> bytes:
        """A LoggerMsg with bytes no client library would write (invalid UTF-8, unknown
        levels), through the Data-typed twin of the schema."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(self.raw.LoggerMsgRaw.new_message(**values).to_bytes_packed())


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def frame_streams(enc: _Encoder) -> list[tuple[str, bytes]]:
    hello = enc.message({**BASE, "message": "framed"})
    standard = enc.message({**BASE, "message": "standard encoding"}, packed=False)
    many = enc.message({**BASE, "attributes": _attrs(("a", "1"), ("b", "2"))}, packed=False)
    nul = b"\x00"
    return [
        ("packed", _frame(hello)),
        ("standard", _frame(standard)),
        ("standard_with_attributes", _frame(many)),
        ("keep_alive_between_frames", _frame(hello) + _frame(b"") + _frame(hello)),
        (
            "invalid_utf8_replaced",
            _frame(enc.raw_message(message=b"bad \xff\xfe end" + nul, hostname=b"h\xc3" + nul)),
        ),
        (
            "invalid_utf8_in_attributes",
            _frame(enc.raw_message(message=b"m\x00", attributes=[{"key": b"k\xff\x00"}])),
        ),
        ("unknown_level_kept_whole", _frame(enc.raw_message(level=40000))),
        ("every_level_number", b"".join(_frame(enc.raw_message(level=n)) for n in range(13))),
        ("empty_message_struct", _frame(enc.message({"level": "NOTSET"}))),
        ("oversized_frame_refused", _frame(hello) + struct.pack(">I", 2**31)),
        ("garbage_payload_refused", _frame(hello) + _frame(b"\x01\x02\x03")),
        ("truncated_packed_refused", _frame(hello[: len(hello) // 2])),
        ("standard_not_whole_words_refused", _frame(standard[:-3])),
        # Zero runs: ~1 KB that would unpack to 1 MB of NULs (a 4 MB line); past 16x.
        (
            "packed_expansion_refused",
            _frame(hello) + _frame(enc.message({**BASE, "message": "\x00" * 1_000_000})),
        ),
    ]


# Large enough for every case; small enough that a 2 GiB length is refused as a frame.
VECTOR_MAX_FRAME_BYTES = 1 << 20


def feed(stream: bytes, fmt: str) -> tuple[str, str | None]:
    decoder = PythonConnectionDecoder(VECTOR_MAX_FRAME_BYTES, fmt)
    lines, _count, stop = decoder.feed(stream, _SEQ_SENTINEL, _RECEIVED_SENTINEL)
    refused = f"{stop[0]}: {stop[1]}" if stop is not None else None
    return lines.decode("utf-8"), refused


def _frame_lines(stream: bytes, fmt: str) -> tuple[list[str], str | None]:
    text, refused = feed(stream, fmt)
    lines = [ln + "\n" for ln in text.split("\n")[:-1]]
    out = []
    for index, line in enumerate(lines):
        seq = _SEQ_SENTINEL + index
        line = line.replace(_RECEIVED_SENTINEL, RECEIVED_PLACEHOLDER)
        if line.startswith('{"seq":'):
            line = line.replace(f'"seq":{seq},', f'"seq":{SEQ_PLACEHOLDER},', 1)
        elif line.startswith(str(seq)):
            line = SEQ_PLACEHOLDER + line[10:]
        out.append(line)
    return out, refused


def build() -> dict[str, Any]:
    enc = _Encoder()
    cases = []
    for name, fields in case_fields():
        record = record_of(fields)
        cases.append(
            {
                "name": name,
                "fields": fields,
                "packed": enc.message(fields).hex(),
                "text": _lines("text", record),
                "json": _lines("json", record),
            }
        )
    frames = []
    for name, stream in frame_streams(enc):
        text, refused = _frame_lines(stream, "text")
        json_lines, _ = _frame_lines(stream, "json")
        frames.append(
            {
                "name": name,
                "stream": stream.hex(),
                "text": text,
                "json": json_lines,
                "refused": refused,
            }
        )
    return {
        "format": 1,
        "about": "log_server shared test vectors: see schema/vectors/README.md",
        "max_frame_bytes": VECTOR_MAX_FRAME_BYTES,
        "cases": cases,
        "frames": frames,
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, ensure_ascii=False, indent=1) + "\n"


def main() -> int:
    new = build()
    old = json.loads(OUT.read_text()) if OUT.exists() else {"cases": [], "frames": []}
    for section in ("cases", "frames"):
        before = {c["name"]: c for c in old.get(section, [])}
        after = {c["name"]: c for c in new[section]}
        for name in after.keys() - before.keys():
            print(f"vectors: {section} {name}: added")
        for name in before.keys() - after.keys():
            print(f"vectors: {section} {name}: removed")
        for name in sorted(after.keys() & before.keys()):
            if after[name] != before[name]:
                print(f"vectors: {section} {name}: changed")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(new))
    print(
        f"generated {OUT.relative_to(ROOT)}: {len(new['cases'])} cases, {len(new['frames'])} frames"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
