"""Our clients against an emulation of the original project's server (issue 18): over TCP
with the HelloMsg option on, over gRPC by falling back to LogBridge, every message arrives, in
order, exactly once; without the hello, the original drops them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from log_server_client import LogClient
from programs import finish, run_program, runs
from support import VECTORS_PATH, load_vectors

pytestmark = pytest.mark.slow

ORIGINAL_SERVER = Path(__file__).with_name("original_server.py")


@dataclass
class OriginalServer:
    port: int
    grpc_port: int
    record: Path

    def records(self) -> list[dict[str, Any]]:
        text = self.record.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def wait_for(self, predicate: Any, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            records = self.records()
            if predicate(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.05)


@pytest.fixture
def original_server(tmp_path: Path) -> Iterator[OriginalServer]:
    port_file, record = tmp_path / "port", tmp_path / "record.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ORIGINAL_SERVER),
            "--port-file",
            str(port_file),
            "--record",
            str(record),
        ]
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert proc.poll() is None, "the emulated original server exited"
            assert time.monotonic() < deadline, "the emulated original server did not start"
            time.sleep(0.05)
        record.touch()
        ports = json.loads(port_file.read_text())
        yield OriginalServer(ports["tcp"], ports["grpc"], record)
    finally:
        proc.terminate()
        proc.wait(10)


def test_python_tcp_client_with_hello_reaches_the_original_server(
    original_server: OriginalServer,
) -> None:
    client = LogClient("127.0.0.1", original_server.port, service_name="svc-hello", hello=True)
    sent = [f"original {i}" for i in range(21)]
    for text in sent:
        client.log("INFO", text)
    assert client.close(10)
    records = original_server.wait_for(lambda rs: sum("message" in r for r in rs) >= len(sent))
    hellos = [r["hello"] for r in records if "hello" in r]
    assert len(hellos) == 1
    assert hellos[0]["fromName"] == "svc-hello"
    assert hellos[0]["toAddress"] == f"127.0.0.1:{original_server.port}"
    assert hellos[0]["fromAddress"].startswith("127.0.0.1:")
    assert [r["message"] for r in records if "message" in r] == sent
    assert not [r for r in records if "rejected" in r or "dropped_connection" in r]


def test_without_hello_the_original_server_drops_everything(
    original_server: OriginalServer,
) -> None:
    """The emulation is strict, so the test above can fail: no hello, no messages."""
    client = LogClient("127.0.0.1", original_server.port, service_name="svc-plain")
    client.log("INFO", "lost")
    assert client.close(10)
    records = original_server.wait_for(lambda rs: any("dropped_connection" in r for r in rs))
    assert [r for r in records if "dropped_connection" in r]
    assert not [r for r in records if "message" in r]


@pytest.mark.parametrize(("name", "transport"), runs("original", ("tcp", "grpc")))
def test_conformance_program_reaches_the_original_server(
    name: str, transport: str, original_server: OriginalServer
) -> None:
    """Every shared vector, through the client's own dialect support: its hello option over
    TCP, its fallback from LogService to LogBridge over gRPC."""
    cases = load_vectors()["cases"]
    port = original_server.grpc_port if transport == "grpc" else original_server.port
    process = run_program(
        name,
        "--scenario",
        "original",
        "--transport",
        transport,
        "--address",
        f"127.0.0.1:{port}",
        "--vectors",
        str(VECTORS_PATH),
    )
    code, err = finish(process, 120)
    assert code == 0, err
    records = original_server.wait_for(lambda rs: sum("fields" in r for r in rs) >= len(cases))
    assert not [r for r in records if "rejected" in r or "dropped_connection" in r], records
    got = [r["fields"] for r in records if "fields" in r]
    expected = [
        {key: value for key, value in case["fields"].items() if key != "attributes"}
        for case in cases
    ]
    assert len(got) == len(expected), f"{len(got)} of {len(expected)} messages, each once"
    for case, want, have in zip(cases, expected, got, strict=True):
        assert have == want, f"{name} over {transport}, case {case['name']}"
    if transport == "tcp":
        connections = {r["conn"] for r in records if "fields" in r}
        greeted = {r["conn"] for r in records if "hello" in r}
        assert connections <= greeted, "every connection opened with a HelloMsg"
