"""Structured attributes from every part of the Python client, end to end through the real
server into text and JSON lines (issue 10 item 3)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from log_server_client import AsyncLogClient, GrpcLogClient, LogClient, LogServerHandler
from log_server_client.encoding import FrameEncoder
from log_server_client.handler import STANDARD_RECORD_KEYS
from support import LOGGER_SCHEMA, RunningServer

# Order matters (kept as given); a hostile key must not pass for a built-in extra.
PAIRS = [("order_id", "7"), ("note", "two words"), ("pid", "forged")]
TEXT_TAIL = ' order_id=7 note="two words" "pid"=forged'
JSON_ATTRIBUTES = {"order_id": "7", "note": "two words", "pid": "forged"}


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.attributes")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _check(server: RunningServer, line_format: str, marker: str) -> None:
    line = server.wait_for_line(marker)
    if line_format == "json":
        record = json.loads(line)
        assert record["message"] == marker
        assert record["attributes"] == JSON_ATTRIBUTES
        assert list(record["attributes"]) == [k for k, _ in PAIRS], "order kept"
    else:
        assert line.endswith(TEXT_TAIL), line


@pytest.mark.parametrize("line_format", ["text", "json"])
def test_attributes_over_tcp_from_handler_clients_and_log_send(
    server_factory: Callable[..., RunningServer],
    app_logger: logging.Logger,
    line_format: str,
) -> None:
    server = server_factory("--format", line_format, "--tcp_only")
    for compiled in (True, False):
        handler = LogServerHandler("127.0.0.1", server.tcp_port, compiled_encoder=compiled)
        app_logger.addHandler(handler)
        app_logger.info(f"from handler {compiled}", extra=dict(PAIRS))
        handler.flush()
        app_logger.removeHandler(handler)
        handler.close()
        _check(server, line_format, f"from handler {compiled}")

    with LogClient("127.0.0.1", server.tcp_port) as client:
        client.log("info", "from LogClient pairs", attributes=PAIRS)
        client.log("info", "from LogClient mapping", attributes=dict(PAIRS))
        assert client.flush(10)
    _check(server, line_format, "from LogClient pairs")
    _check(server, line_format, "from LogClient mapping")

    async def send_async() -> bool:
        async with AsyncLogClient("127.0.0.1", server.tcp_port) as client:
            client.log("info", "from AsyncLogClient", attributes=PAIRS)
            return await client.flush(10)

    assert asyncio.run(send_async())
    _check(server, line_format, "from AsyncLogClient")

    result = subprocess.run(
        [sys.executable, "-m", "log_server_client.cli", "--port", str(server.tcp_port)]
        + [arg for key, value in PAIRS for arg in ("-a", f"{key}={value}")]
        + ["from log_send"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    _check(server, line_format, "from log_send")


@pytest.mark.parametrize("line_format", ["text", "json"])
def test_attributes_over_grpc_unary_stream_and_batch(
    server_factory: Callable[..., RunningServer], line_format: str
) -> None:
    server = server_factory("--format", line_format)
    for mode in ("unary", "stream", "batch"):
        client = GrpcLogClient(f"127.0.0.1:{server.grpc_port}", mode=mode)  # type: ignore[arg-type]
        client.log("info", f"from grpc {mode}", attributes=PAIRS)
        assert client.flush(20), client.last_error
        client.close()
        _check(server, line_format, f"from grpc {mode}")


def test_a_message_without_attributes_leaves_the_list_unset() -> None:
    """What an original-format client sends: no attributes pointer at all."""
    texts = (None,) * 7 + ("plain",) + (None,) * 7
    for native in (True, False):
        frame = FrameEncoder(native=native).encode_texts(3, texts)
        assert not LOGGER_SCHEMA.LoggerMsg.from_bytes_packed(frame[4:])._has("attributes")


def test_only_extra_keys_become_attributes(app_logger: logging.Logger) -> None:
    record = app_logger.makeRecord(
        "n", logging.INFO, "f.py", 1, "m %s", ("x",), None, extra={"user": 5, "z": None}
    )
    record.getMessage()
    logging.Formatter("%(asctime)s %(message)s").format(record)  # adds message, asctime
    assert LogServerHandler.attributes(record) == [("user", "5"), ("z", "None")]
    assert "taskName" in STANDARD_RECORD_KEYS and "user" not in STANDARD_RECORD_KEYS


def test_log_send_refuses_an_attribute_without_equals() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "log_server_client.cli", "-a", "novalue", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr
