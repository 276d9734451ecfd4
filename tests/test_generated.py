"""The committed protobuf/gRPC stubs must be what the .proto generates (no drift)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    gen_proto = importlib.util.module_from_spec(spec)
    sys.modules["gen_proto"] = gen_proto
    spec.loader.exec_module(gen_proto)
    gen_proto.generate(tmp_path)
    for name in gen_proto.STUBS:
        committed = (gen_proto.OUT / name).read_text()
        assert (tmp_path / name).read_text() == committed, (
            f"{name} drifted from log_service.proto: run `make gen-proto` and commit"
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
    }
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
    }
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


def test_python_client_copies_match_the_server() -> None:
    """The client package carries copies (it must not depend on the server package)."""
    client = ROOT / "clients" / "python" / "src" / "log_server_client"
    server = ROOT / "src" / "log_server"
    pairs = [
        (client / "schema" / "logger.capnp", server / "schema" / "logger.capnp"),
        (client / "generated" / "log_service_pb2.py", server / "generated" / "log_service_pb2.py"),
        (
            client / "generated" / "log_service_pb2.pyi",
            server / "generated" / "log_service_pb2.pyi",
        ),
    ]
    for copy, original in pairs:
        assert copy.read_bytes() == original.read_bytes(), f"{copy} differs from {original}"
