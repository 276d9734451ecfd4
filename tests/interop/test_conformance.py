"""Every client's conformance program against the real server (schema/vectors/README.md):
the shared vectors over each transport it supports, in text and JSON, a server restart in the
middle of a stream, and a server that is down (programs.py runs them)."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from programs import CLIENTS, RUN_TIMEOUT_S, finish, run_program, runs
from support import VECTORS_PATH, RunningServer, free_port, load_vectors, start_server

pytestmark = pytest.mark.slow

SERVER_NAME = "InteropServer"
RECEIVED_AT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
# gRPC-Web is served on the gRPC port, next to native gRPC.
GRPC_PORT_TRANSPORTS = ("grpc", "grpc-web")


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
@pytest.mark.parametrize(("name", "transport"), runs("vectors"))
def test_vectors(
    name: str, transport: str, line_format: str, server_factory: Callable[..., RunningServer]
) -> None:
    cases = load_vectors()["cases"]
    server = server_factory("--name", SERVER_NAME, "--format", line_format)
    process = run_program(
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
    code, err = finish(process, RUN_TIMEOUT_S)
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


@pytest.mark.parametrize(("name", "transport"), runs("restart"))
def test_restart_mid_stream_loses_nothing(name: str, transport: str, tmp_path: Path) -> None:
    count = 300
    log_dir = tmp_path / "logs"
    port = free_port()
    port_flag = "--grpc_port" if transport in GRPC_PORT_TRANSPORTS else "--port"
    port_args = (port_flag, str(port))
    server = start_server(log_dir, "--name", SERVER_NAME, *port_args)
    process = None
    try:
        process = run_program(
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
        code, err = finish(process, 90)
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


@pytest.mark.parametrize(("name", "transport"), runs("down"))
def test_server_down_gives_up_in_bounded_time(name: str, transport: str) -> None:
    started = time.monotonic()
    process = run_program(
        name,
        "--scenario",
        "down",
        "--transport",
        transport,
        "--address",
        f"127.0.0.1:{free_port()}",
    )
    code, err = finish(process, 30)
    elapsed = time.monotonic() - started
    assert code == 3, f"exit {code}: {err}"
    assert err.strip(), "one line on stderr saying what was not delivered"
    assert elapsed < 10, f"took {elapsed:.1f} s (at most 10 s)"


def test_every_client_registers_a_conformance_program() -> None:
    assert "python" in CLIENTS
    for name, spec in CLIENTS.items():
        assert set(spec["scenarios"]) <= {"vectors", "restart", "down", "original"}, name
        assert set(spec["transports"]) <= {"tcp", "grpc", "grpc-web"}, name
