"""The Python client tried as a new user would (issue 14 items 20-23): a program whose log
server is down still exits promptly, with one warning; text that is not UTF-8 is replaced,
not fatal; log_send fails fast and says why; the clients reach a --unix_socket server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from log_server_client import GrpcLogClient, LogClient, LogServerHandler
from support import RunningServer, free_port

EXIT_BOUND_S = 5.0
# Room for starting the interpreter on a loaded machine, not for another wait.
STARTUP_SLACK_S = 3.0


def _python(
    code: str, *args: str, stdin: bytes = b""
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    return result, time.monotonic() - started


HANDLER_APP = """
    import logging, sys
    from log_server_client import LogServerHandler
    logging.getLogger().addHandler(LogServerHandler("127.0.0.1", int(sys.argv[1])))
    logging.getLogger().setLevel(logging.INFO)
    logging.info("nobody listens")
    if sys.argv[2] == "shutdown":
        logging.shutdown()
"""


def test_an_app_whose_server_is_down_exits_within_the_bound_with_one_warning() -> None:
    """Before: about 26 s (the exit hook's flush, then logging.shutdown's flush and close,
    10 s each) and the warning printed twice."""
    for how in ("exit", "shutdown"):
        result, elapsed = _python(HANDLER_APP, str(free_port()), how)
        assert result.returncode == 0, result.stderr
        warnings = [ln for ln in result.stderr.decode().splitlines() if "not delivered" in ln]
        assert len(warnings) == 1, result.stderr
        assert warnings[0].startswith("log_server_client: 1 messages not delivered")
        assert elapsed < EXIT_BOUND_S + STARTUP_SLACK_S, f"{how}: {elapsed:.1f} s"


# The client as `pip install ./clients/python` leaves it: without the compiled module.
IMPORT_SYS = "import sys; "
WITHOUT_COMPILED = "import sys; sys.modules['log_server_native'] = None; "
LOG_SEND = "from log_server_client.cli import main; sys.exit(main(sys.argv[1:]))"
NOT_UTF8_STDIN = b"ok \xff\xfe bad\ncaf\xc3\xa9 \xc3(\nlast line\n"
NOT_UTF8_ARG = b"arg \xff end"


def _log_send(port: int, encoder: str, *args: bytes, stdin: bytes = b"") -> None:
    code = (IMPORT_SYS if encoder == "compiled" else WITHOUT_COMPILED) + LOG_SEND
    argv = [sys.executable.encode(), b"-c", code.encode(), b"--port", str(port).encode(), *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert not result.stderr, result.stderr.decode()


@pytest.mark.parametrize("line_format", ["text", "json"])
def test_text_that_is_not_utf8_is_replaced_the_same_by_both_encoders(
    server_factory: Callable[..., RunningServer], line_format: str
) -> None:
    """Before: with pycapnp, log_send died with a traceback on the first such stdin line (the
    rest of stdin lost) and the handler dropped the record."""
    server = server_factory("--tcp_only", "--format", line_format)
    expected = [
        b.decode("utf-8", "replace")
        for b in (*NOT_UTF8_STDIN.splitlines(), NOT_UTF8_ARG, NOT_UTF8_ARG)
    ]
    messages: dict[str, list[str]] = {}
    for encoder in ("compiled", "pycapnp"):
        _log_send(server.tcp_port, encoder, b"-n", encoder.encode(), stdin=NOT_UTF8_STDIN)
        _log_send(server.tcp_port, encoder, b"-n", encoder.encode(), NOT_UTF8_ARG)
        handler = LogServerHandler(
            "127.0.0.1", server.tcp_port, compiled_encoder=encoder == "compiled"
        )
        record = logging.makeLogRecord(
            {
                "name": encoder,
                "levelno": logging.INFO,
                "msg": NOT_UTF8_ARG.decode("utf-8", "surrogateescape"),
            }
        )
        handler.handle(record)
        assert handler.client.flush(10)
        handler.close()
        lines = server.wait_for(
            lambda ls, name=encoder: sum(_logger(ln, line_format) == name for ln in ls) == 5
        )
        messages[encoder] = [
            _message(ln, line_format) for ln in lines if _logger(ln, line_format) == encoder
        ]
    if line_format == "json":
        assert messages["compiled"] == messages["pycapnp"] == expected
    else:
        for encoder, texts in messages.items():
            assert all(line.endswith(f" {m}") for line, m in zip(texts, expected, strict=True)), (
                encoder,
                texts,
            )


def _logger(line: str, line_format: str) -> str:
    if line_format == "json":
        return str(json.loads(line)["logger_name"])
    return line.split()[3]


def _message(line: str, line_format: str) -> str:
    """The message (JSON), or the line from the message on, with the extras that differ
    between the two runs cut off (text)."""
    if line_format == "json":
        return str(json.loads(line)["message"])
    return line.split(" pid=")[0]


@pytest.mark.parametrize("transport", ["tcp", "grpc"])
def test_a_refused_connection_is_reported_at_the_first_attempt(transport: str) -> None:
    """wait_connected (what log_send uses) answers once the first attempt fails. Before: it
    retried until its timeout (log_send took 3.5 s over TCP, 10 s over gRPC)."""
    port = free_port()  # nothing listens there
    client: LogClient | GrpcLogClient
    if transport == "grpc":
        client = GrpcLogClient(f"127.0.0.1:{port}", timeout_s=60)
    else:
        client = LogClient("127.0.0.1", port, connect_timeout_s=60)
    started = time.monotonic()
    assert not client.wait_connected(timeout_s=60)
    elapsed = time.monotonic() - started
    client.close(timeout_s=0)
    assert client.last_error is not None
    assert elapsed < 30, f"{elapsed:.1f} s: it waited for the timeout instead"


def test_log_send_over_grpc_says_in_one_line_why_it_cannot_connect() -> None:
    port = free_port()
    result, _ = _python(IMPORT_SYS + LOG_SEND, "--grpc", "--port", str(port), "hello")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"log_send: error: cannot reach the log server at 127.0.0.1:{port}: connection failed\n"
    )


def test_log_send_grpc_without_the_extra_prints_a_one_line_hint() -> None:
    code = "import sys; sys.modules['grpc'] = None; " + LOG_SEND
    result, _ = _python(code, "--grpc", "hello")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "log_send: error: --grpc needs the client's gRPC extra (grpc is missing): "
        "pip install 'log_server_client[grpc]'\n"
    )


def test_library_handler_and_log_send_reach_a_unix_socket_server(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """Before: none of them could (no unix_socket parameter, no --unix_socket flag)."""
    path = str(tmp_path / "log.sock")
    server = server_factory("--tcp_only", "--unix_socket", path)
    for ack in (False, True):
        with LogClient(unix_socket=path, ack=ack) as client:
            client.log("info", f"over the unix socket ack={ack}")
            assert client.flush(10), client.last_error
    handler = LogServerHandler(unix_socket=path)
    handler.handle(logging.makeLogRecord({"levelno": logging.INFO, "msg": "handler via socket"}))
    handler.flush()
    handler.close()
    result, _ = _python(IMPORT_SYS + LOG_SEND, "--unix_socket", path, "log_send via socket")
    assert result.returncode == 0, result.stderr
    for text in ("ack=False", "ack=True", "handler via socket", "log_send via socket"):
        server.wait_for_text(text)
    opened = [ln for ln in server.lines() if "connection_opened" in ln]
    assert len(opened) == 4 and not [ln for ln in opened if "127.0.0.1" in ln], opened


def test_log_send_names_the_unix_socket_it_cannot_reach(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody.sock")
    result, _ = _python(IMPORT_SYS + LOG_SEND, "--unix_socket", path, "hello")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"log_send: error: cannot reach the log server at {path}: No such file or directory\n"
    )


def test_grpc_client_replaces_text_that_is_not_utf8(server: RunningServer) -> None:
    """protobuf refuses a str with lone surrogates; the gRPC client replaces them as the TCP
    encoders do, instead of failing the whole batch."""
    client = GrpcLogClient(f"127.0.0.1:{server.grpc_port}")
    message = NOT_UTF8_ARG.decode("utf-8", "surrogateescape")
    client.log("info", message, attributes={"k": message})
    assert client.flush(20), client.last_error
    client.close()
    expected = NOT_UTF8_ARG.decode("utf-8", "replace")
    assert server.wait_for_line(expected).endswith(f' k="{expected}"')
