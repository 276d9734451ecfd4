"""Every generated file must be what `make gen` makes from schema/ (no drift), and the
contract's names and numbers never change."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
# CI installs every generator's compiler and sets this, so that a missing one fails there.
GEN_TOOLS_REQUIRED = os.environ.get("LOG_SERVER_GEN_TOOLS_REQUIRED") == "1"


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules["gen"] = gen
    spec.loader.exec_module(gen)
    return gen


GEN = _gen()


@pytest.mark.parametrize("target", list(GEN.TARGETS))
def test_committed_files_match_make_gen(target: str, tmp_path: Path) -> None:
    try:
        written = GEN.generate(tmp_path, only=[target])
    except GEN.ToolMissing as exc:
        if GEN_TOOLS_REQUIRED:
            raise
        pytest.skip(f"cannot regenerate {target} here ({exc}); CI installs it")
    assert written
    for path in written:
        relative = path.relative_to(tmp_path)
        committed = ROOT / relative
        assert committed.exists(), f"{relative} is generated but not committed: run `make gen`"
        assert path.read_bytes() == committed.read_bytes(), (
            f"{relative} differs from what `make gen` makes from schema/: run `make gen` and "
            "commit (never edit a generated file by hand)"
        )


def test_schema_contract_field_numbers() -> None:
    """The wire contract with existing clients: names and numbers never change."""
    from log_server.generated import log_service_pb2 as pb

    fields = {f.name: f.number for f in pb.LogRequest.DESCRIPTOR.fields}
    assert fields == {
        "timestamp": 1,
        "hostname": 2,
        "logger_name": 3,
        "module": 4,
        "level": 5,
        "filename": 6,
        "function_name": 7,
        "line_number": 8,
        "message": 9,
        "path_name": 10,
        "process_id": 11,
        "process_name": 12,
        "thread_id": 13,
        "thread_name": 14,
        "service_name": 15,
        "stack_trace": 16,
        "attributes": 17,
    }
    assert {f.name: f.number for f in pb.Attribute.DESCRIPTOR.fields} == {"key": 1, "value": 2}
    assert [v.name for v in pb.Level.DESCRIPTOR.values] == [
        "NOTSET",
        "DEBUG",
        "STREAM",
        "INFO",
        "LOGON",
        "LOGOUT",
        "TRADE",
        "SCHEDULE",
        "REPORT",
        "WARNING",
        "ERROR",
        "CRITICAL",
    ]
    assert {f.name: f.number for f in pb.LogResponse.DESCRIPTOR.fields} == {"success": 1}


def test_capnp_contract_ordinals() -> None:
    from support import LOGGER_SCHEMA

    schema = LOGGER_SCHEMA.LoggerMsg.schema
    ordinals = {name: schema.fields[name].proto.ordinal.explicit for name in schema.fieldnames}
    assert ordinals == {
        "timestamp": 0,
        "hostname": 1,
        "loggerName": 2,
        "module": 3,
        "level": 4,
        "filename": 5,
        "functionName": 6,
        "lineNumber": 7,
        "message": 8,
        "pathName": 9,
        "processId": 10,
        "processName": 11,
        "threadId": 12,
        "threadName": 13,
        "serviceName": 14,
        "stackTrace": 15,
        "attributes": 16,
    }
    attribute = LOGGER_SCHEMA.Attribute.schema
    assert [attribute.fields[n].proto.ordinal.explicit for n in ("key", "value")] == [0, 1]
    assert LOGGER_SCHEMA.schema.node.id == 0xFC867D59C4F2E15C
    assert list(LOGGER_SCHEMA.Level.schema.enumerants) == [
        "notset",
        "debug",
        "stream",
        "info",
        "logon",
        "logout",
        "trade",
        "schedule",
        "report",
        "warning",
        "error",
        "critical",
    ]
