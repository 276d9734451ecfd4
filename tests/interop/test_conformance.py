"""Every client's conformance program against the real server (schema/vectors/README.md):
the shared vectors over each transport it supports, in text and JSON, a server restart in the
middle of a stream, and a server that is down.

Clients register themselves in clients/<lang>/conformance.json. A client whose toolchain is
not on this machine is reported as skipped with the reason; with LOG_SERVER_INTEROP_REQUIRED=1
(CI) it fails instead, so nothing passes by being absent."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, VECTORS_PATH, RunningServer, free_port, load_vectors, start_server

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("LOG_SERVER_INTEROP_REQUIRED") == "1"
SERVER_NAME = "InteropServer"
BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 120
RECEIVED_AT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
CLIENTS = {
    path.parent.name: {**json.loads(path.read_text()), "dir": path.parent}
    for path in sorted((ROOT / "clients").glob("*/conformance.json"))
}
# gRPC-Web is served on the gRPC port, next to native gRPC.
GRPC_PORT_TRANSPORTS = ("grpc", "grpc-web")
_built: dict[str, str | None] = {}


def _runs(kind: str) -> list[Any]:
    """(client, transport) pairs for a scenario."""
    return [
        pytest.param(name, transport, id=f"{name}-{transport}")
        for name, spec in CLIENTS.items()
        if kind in spec["scenarios"]
        for transport in spec["transports"]
    ]


def _ready(name: str) -> dict[str, Any]:
    """The client's spec once its toolchain is there and it is built (once per session)."""
    spec = CLIENTS[name]
    if name not in _built:
        missing = [tool for tool in spec.get("requires", []) if shutil.which(tool) is None]
        _built[name] = f"{', '.join(missing)} not on PATH" if missing else None
        if not missing and spec.get("build"):
            result = subprocess.run(
                spec["build"],
                cwd=spec["dir"],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
            if result.returncode != 0:
                _built[name] = f"build failed:\n{result.stdout}\n{result.stderr}"
                pytest.fail(f"{name}: {_built[name]}")
    reason = _built[name]
    if reason is not None:
        if REQUIRED or reason.startswith("build failed"):
            pytest.fail(f"{name} conformance cannot run: {reason}")
        pytest.skip(f"{name} conformance not run: {reason}")
    return spec


def _run(name: str, *args: str, timeout_s: float = RUN_TIMEOUT_S) -> subprocess.Popen[str]:
    spec = _ready(name)
    argv = [part.replace("{python}", sys.executable) for part in spec["run"]]
    return subprocess.Popen(
        [*argv, *args],
        cwd=spec["dir"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout_s: float) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"still running after {timeout_s} s: {err}") from None
    return process.returncode, err


def _address(server: RunningServer, transport: str) -> str:
    port = server.grpc_port if transport in GRPC_PORT_TRANSPORTS else server.tcp_port
    return f"127.0.0.1:{port}"


def _pattern(template: str, json_format: bool) -> re.Pattern[str]:
    seq = r"\d+" if json_format else r"\s*\d+"
    text = re.escape(template).replace(re.escape("{seq}"), seq)
    return re.compile(text.replace(re.escape("{received_at}"), RECEIVED_AT), re.S)


def _client_lines(server: RunningServer, json_format: bool) -> list[str]:
    """The clients' lines, without the server's own (connections, start-up)."""
    own: Callable[[str], bool]
    if json_format:
        own = lambda line: json.loads(line)["logger_name"] == SERVER_NAME  # noqa: E731
    else:
        own = lambda line: line[58:73].rstrip() == SERVER_NAME  # noqa: E731
    return [line + "\n" for line in server.lines() if not own(line)]


@pytest.mark.parametrize("line_format", ["text", "json"])
@pytest.mark.parametrize(("name", "transport"), _runs("vectors"))
def test_vectors(
    name: str, transport: str, line_format: str, server_factory: Callable[..., RunningServer]
) -> None:
    cases = load_vectors()["cases"]
    server = server_factory("--name", SERVER_NAME, "--format", line_format)
    process = _run(
        name,
        "--scenario",
        "vectors",
        "--transport",
        transport,
        "--address",
        _address(server, transport),
        "--vectors",
        str(VECTORS_PATH),
    )
    code, err = _finish(process, RUN_TIMEOUT_S)
    assert code == 0, err
    json_format = line_format == "json"
    deadline = time.monotonic() + 15
    while len(lines := _client_lines(server, json_format)) < len(cases):
        assert time.monotonic() < deadline, f"{len(lines)} of {len(cases)} lines on disk"
        time.sleep(0.05)
    assert len(lines) == len(cases), "each case exactly once"
    for case, line in zip(cases, lines, strict=True):
        assert _pattern(case[line_format], json_format).fullmatch(line), (
            f"{name} over {transport}, case {case['name']}:\n"
            f"expected {case[line_format]!r}\ngot      {line!r}"
        )
    seqs = [int(json.loads(ln)["seq"]) if json_format else int(ln.split()[0]) for ln in lines]
    assert seqs == sorted(seqs)


@pytest.mark.parametrize(("name", "transport"), _runs("restart"))
def test_restart_mid_stream_loses_nothing(name: str, transport: str, tmp_path: Path) -> None:
    count = 300
    log_dir = tmp_path / "logs"
    port = free_port()
    port_flag = "--grpc_port" if transport in GRPC_PORT_TRANSPORTS else "--port"
    port_args = (port_flag, str(port))
    server = start_server(log_dir, "--name", SERVER_NAME, *port_args)
    process = None
    try:
        process = _run(
            name,
            "--scenario",
            "restart",
            "--transport",
            transport,
            "--address",
            f"127.0.0.1:{port}",
            "--count",
            str(count),
        )
        server.wait_for_text("restart ", count=count // 5, timeout_s=60)
        assert server.stop(signal.SIGTERM) == 0
        server = start_server(log_dir, "--name", SERVER_NAME, *port_args)
        code, err = _finish(process, 90)
        assert code == 0, err
        on_disk = {m.group(1) for ln in server.lines() if (m := re.search(r" restart (\d+)", ln))}
        missing = sorted(set(map(str, range(count))) - on_disk, key=int)
        assert not missing, f"{len(missing)} messages lost, first {missing[:5]}"
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.mark.parametrize(("name", "transport"), _runs("down"))
def test_server_down_gives_up_in_bounded_time(name: str, transport: str) -> None:
    started = time.monotonic()
    process = _run(
        name,
        "--scenario",
        "down",
        "--transport",
        transport,
        "--address",
        f"127.0.0.1:{free_port()}",
    )
    code, err = _finish(process, 30)
    elapsed = time.monotonic() - started
    assert code == 3, f"exit {code}: {err}"
    assert err.strip(), "one line on stderr saying what was not delivered"
    assert elapsed < 10, f"took {elapsed:.1f} s (at most 10 s)"


def test_every_client_registers_a_conformance_program() -> None:
    assert "python" in CLIENTS
    for name, spec in CLIENTS.items():
        assert set(spec["scenarios"]) <= {"vectors", "restart", "down"}, name
        assert set(spec["transports"]) <= {"tcp", "grpc", "grpc-web"}, name
