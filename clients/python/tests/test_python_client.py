"""The Python client against the real server: library, logging handler, log_send."""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.config
import re
import socket
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_server_client import AsyncLogClient, Level, LogClient, LogServerHandler, QueueFullError
from log_server_client.client import TcpTransport
from log_server_client.encoding import TEXT_FIELDS, FrameEncoder, lossy_text
from log_server_client.grpc_client import GrpcLogClient
from log_server_client.handler import to_server_level
from support import LOGGER_SCHEMA, RunningServer, free_port, start_server

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.app")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def test_log_fills_defaults_and_fields(server: RunningServer) -> None:
    with LogClient("127.0.0.1", server.tcp_port, logger_name="billing") as client:
        assert client.log(
            "warning",
            "card declined",
            filename="pay.py",
            line_number=88,
            function_name="charge",
            service_name="shop",
        )
        assert client.flush(10)
    line = server.wait_for_line("card declined")
    assert re.search(
        r"^\s*\d+ 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00\s+\S+\s+billing\s+"
        r"WARNING\s+pay\.py\s+charge\s+88 card declined pid=\d+ "
        r"process=MainProcess tid=\d+ thread=MainThread service=shop$",
        line,
    ), line


def test_handler_fields_land_in_the_right_columns(
    server: RunningServer, app_logger: logging.Logger
) -> None:
    handler = LogServerHandler("127.0.0.1", server.tcp_port, service_name="svc")
    app_logger.addHandler(handler)

    def failing_function() -> None:
        try:
            raise ValueError("bad value\nsecond line")
        except ValueError:
            app_logger.exception("it broke: %s", "details")

    failing_function()
    expected_line = failing_function.__code__.co_firstlineno + 4
    handler.flush()
    line = server.wait_for_line("it broke: details")
    # The filename column is 20 wide: "test_python_client.py" is cut by one character.
    assert re.search(
        rf"tests\.app\s+ERROR\s+test_python_client\.p failing_function\s+"
        rf"{expected_line} it broke: details module=test_python_client ",
        line,
    ), line
    assert 'stack="Traceback (most recent call last):\\n' in line
    assert 'ValueError: bad value\\nsecond line"' in line
    assert line.count("\n") == 0


def test_level_mapping() -> None:
    assert [to_server_level(n) for n in (0, 10, 20, 30, 40, 50)] == [
        Level.NOTSET,
        Level.DEBUG,
        Level.INFO,
        Level.WARNING,
        Level.ERROR,
        Level.CRITICAL,
    ]
    assert to_server_level(25) == Level.WARNING  # a tie goes to the more severe
    assert to_server_level(22) == Level.INFO
    assert to_server_level(99) == Level.CRITICAL
    assert to_server_level(5) == Level.DEBUG


def test_dict_config(server: RunningServer, app_logger: logging.Logger) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "incremental": False,
            "disable_existing_loggers": False,
            "handlers": {
                "server": {
                    "class": "log_server_client.LogServerHandler",
                    "host": "127.0.0.1",
                    "port": server.tcp_port,
                    "service_name": "from-dictconfig",
                }
            },
            "loggers": {"tests.app": {"handlers": ["server"], "level": "INFO", "propagate": False}},
        }
    )
    app_logger.info("configured by dict")
    for handler in app_logger.handlers:
        handler.flush()
    assert "service=from-dictconfig" in server.wait_for_line("configured by dict")


def test_10000_messages_from_4_threads_arrive_in_per_thread_order(server: RunningServer) -> None:
    client = LogClient("127.0.0.1", server.tcp_port)

    def worker(t: int) -> None:
        for i in range(2500):
            client.log(Level.INFO, f"thread{t}-{i}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.flush(30)
    client.close()
    pattern = re.compile(r" thread(\d)-(\d+) ")
    lines = server.wait_for(
        lambda ls: sum(bool(pattern.search(ln)) for ln in ls) == 10_000, timeout_s=30
    )
    per_thread: dict[int, list[int]] = {t: [] for t in range(4)}
    for line in lines:
        if m := pattern.search(line):
            per_thread[int(m.group(1))].append(int(m.group(2)))
    assert all(indices == list(range(2500)) for indices in per_thread.values())


def test_reconnects_after_a_server_restart_and_delivers_what_it_queued(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    first = server_factory(log_dir=log_dir)
    port = first.tcp_port
    client = LogClient("127.0.0.1", port, reconnect_max_s=0.2)
    client.log("info", "before restart")
    assert client.flush(10)
    first.wait_for_text("before restart")
    assert first.stop() == 0
    for i in range(100):
        client.log("info", f"while down {i}")
    second = start_server(log_dir, "--port", str(port), "--tcp_only")
    try:
        assert second.tcp_port == port
        assert client.flush(30), client.last_error
        lines = second.wait_for_text("while down 99")
        down = [int(m.group(1)) for ln in lines if (m := re.search(r"while down (\d+)", ln))]
        assert sorted(set(down)) == list(range(100)), "every queued message delivered"
        client.close()
    finally:
        second.stop()


def test_drop_policy_counts_what_it_dropped() -> None:
    port = free_port()  # nothing listens there
    client = LogClient("127.0.0.1", port, queue_size=10, on_full="drop", reconnect_max_s=0.05)
    accepted = sum(client.log("info", f"m{i}") for i in range(50))
    assert client.dropped == 50 - accepted
    assert client.dropped >= 30
    client.close(timeout_s=0.1)


def test_block_policy_with_timeout_raises_instead_of_losing() -> None:
    client = LogClient("127.0.0.1", free_port(), queue_size=5, block_timeout_s=0.2)
    with pytest.raises(QueueFullError):
        for i in range(100):
            client.log("info", f"m{i}")
    assert client.dropped == 0
    client.close(timeout_s=0.1)


@pytest.mark.parametrize("mode", ["batch", "stream", "unary"])
def test_grpc_client(server: RunningServer, mode: str) -> None:
    client = GrpcLogClient(
        f"127.0.0.1:{server.grpc_port}",
        mode=mode,  # type: ignore[arg-type]
        logger_name="grpc-app",
    )
    for i in range(20):
        client.log("error", f"{mode} message {i}", filename="g.py")
    assert client.flush(20), client.last_error
    client.close()
    lines = server.wait_for_text(f"{mode} message 19")
    ours = [ln for ln in lines if f"{mode} message" in ln]
    got = [int(m.group(1)) for ln in ours if (m := re.search(r"message (\d+)", ln))]
    assert got == list(range(20))
    assert re.search(r"grpc-app\s+ERROR\s+g\.py", ours[0])


def test_async_client(server: RunningServer) -> None:
    async def main() -> bool:
        async with AsyncLogClient("127.0.0.1", server.tcp_port) as client:
            for i in range(100):
                client.log("debug", f"async {i}")
            return await client.flush(10)

    assert asyncio.run(main())
    lines = server.wait_for_text("async 99")
    got = [int(m.group(1)) for ln in lines if (m := re.search(r" async (\d+) ", ln))]
    assert got == list(range(100))


def run_send(
    *args: str, stdin: str = "", command: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    argv = list(command or (sys.executable, "-m", "log_server_client.cli"))
    return subprocess.run([*argv, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_log_send_one_message_and_stdin_lines(server: RunningServer) -> None:
    port = str(server.tcp_port)
    one = run_send("-l", "warning", "-n", "backup", "--port", port, "disk", "almost", "full")
    assert one.returncode == 0, one.stderr
    assert re.search(r"backup\s+WARNING\s.* disk almost full", server.wait_for_line("disk almost"))
    piped = run_send("-n", "some_command", "--port", port, stdin="line one\nline two\nline three\n")
    assert piped.returncode == 0, piped.stderr
    lines = server.wait_for_text("line three")
    got = [m.group(1) for ln in lines if (m := re.search(r"some_command .* line (\w+) ", ln))]
    assert got == ["one", "two", "three"]


def test_log_server_send_is_the_same_command(server: RunningServer) -> None:
    result = run_send(
        "--port",
        str(server.tcp_port),
        "via",
        "log_server",
        "send",
        command=(sys.executable, "-m", "log_server", "send"),
    )
    assert result.returncode == 0, result.stderr
    server.wait_for_text("via log_server send")


def test_log_send_over_grpc(server: RunningServer) -> None:
    result = run_send("--grpc", "--port", str(server.grpc_port), "grpc", "sent")
    assert result.returncode == 0, result.stderr
    server.wait_for_text("grpc sent")


def test_log_send_fails_clearly_when_nothing_listens() -> None:
    port = free_port()
    result = run_send("--port", str(port), "nobody", "home")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"log_send: error: cannot reach the log server at 127.0.0.1:{port}: Connection refused"
    )


# Surrogates included: text that came from undecodable bytes (surrogateescape).
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
text_values = st.one_of(st.none(), any_text, st.integers(0, 10**9))
attribute_lists = st.one_of(
    st.none(), st.lists(st.tuples(any_text, st.one_of(any_text, st.integers())), max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(
    level=st.integers(0, 11),
    texts=st.tuples(*[text_values] * 15),
    attributes=attribute_lists,
)
def test_native_and_pycapnp_encoders_encode_the_same_message(
    level: int, texts: tuple[object, ...], attributes: list[tuple[str, object]] | None
) -> None:
    native = pytest.importorskip("log_server_native", reason="the compiled module is optional")
    pycapnp_encoder = FrameEncoder(native=False)
    frames = [
        native.encode_frame(level, texts, attributes),
        pycapnp_encoder.encode_texts(level, texts, attributes),
    ]
    decoded = []
    for frame in frames:
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        reader = LOGGER_SCHEMA.LoggerMsg.from_bytes_packed(frame[4:])
        pairs = [(a.key, a.value) for a in reader.attributes]
        decoded.append((reader.level.raw, [reader._get(name) for name in TEXT_FIELDS], pairs))
    assert decoded[0] == decoded[1]
    expected = ["" if v is None else lossy_text(v) for v in texts]
    expected_pairs = [(lossy_text(k), lossy_text(v)) for k, v in attributes or []]
    assert decoded[0] == (level, expected, expected_pairs)


def test_lossy_text_turns_escaped_bytes_back_into_what_the_server_would_write() -> None:
    raw = b"caf\xc3\xa9 \xff\xfe end"
    assert lossy_text(raw.decode("utf-8", "surrogateescape")) == raw.decode("utf-8", "replace")
    assert lossy_text("lone \ud800 high") == "lone \ufffd\ufffd\ufffd high"
    assert lossy_text(7) == "7"


def test_acked_client_survives_kill_9_of_the_server(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """100,000 messages from an acknowledged client, logged from a thread while the server
    is kill -9-ed and restarted on the same port; afterwards every message is in the files
    (a resent message may appear twice, none is missing)."""
    log_dir = tmp_path / "logs"
    first = server_factory("--tcp_only", "--fsync", "batch", log_dir=log_dir)
    port = first.tcp_port
    client = LogClient("127.0.0.1", port, ack=True, reconnect_max_s=0.2)
    total = 100_000

    def produce() -> None:
        for i in range(total):
            client.log("info", f"acked message {i}")

    producer = threading.Thread(target=produce)
    producer.start()
    first.wait_for(lambda ls: len(ls) > 20_000, timeout_s=30)
    first.process.kill()  # SIGKILL in the middle of the stream
    first.process.wait(timeout=10)
    second = start_server(log_dir, "--port", str(port), "--tcp_only", "--fsync", "batch")
    try:
        producer.join(timeout=60)
        assert client.flush(120), client.last_error
        client.close()
        lines = second.lines()
    finally:
        second.stop()
    ids = [int(m.group(1)) for ln in lines if (m := re.search(r"acked message (\d+) ", ln))]
    assert set(ids) == set(range(total)), f"missing: {sorted(set(range(total)) - set(ids))[:10]}"
    assert len(ids) - total < total // 2, "duplicates only from resending what was unacked"


def test_a_server_that_resets_during_the_ack_hello_leaves_no_socket_open() -> None:
    """Regression (the kill -9 test above, under CPU load): when the server went away in the
    middle of the acknowledged-mode hello, the half-opened socket was never closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def reset_after_the_hello() -> None:
        conn, _ = listener.accept()
        conn.recv(8)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # linger 0: a reset, not an orderly close

    peer = threading.Thread(target=reset_after_the_hello)
    peer.start()
    transport = TcpTransport("127.0.0.1", port, connect_timeout_s=5, ack=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        failed = False
        try:
            transport.connect()
        except OSError:
            failed = True  # the exception (and the frames it holds) is dropped here
        gc.collect()
    peer.join(timeout=5)
    listener.close()
    assert failed, "the reset must fail the connect"
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_grpc_client_with_ack_waits_for_the_disk(server: RunningServer) -> None:
    client = GrpcLogClient(f"127.0.0.1:{server.grpc_port}", ack=True)
    for i in range(50):
        client.log("info", f"grpc acked {i}")
    assert client.flush(20), client.last_error
    client.close()
    assert sum("grpc acked" in ln for ln in server.lines()) == 50, "on disk when flushed"


def test_a_message_over_the_frame_limit_is_dropped_not_resent_forever(
    server_factory: Callable[..., RunningServer], app_logger: logging.Logger, capsys: Any
) -> None:
    """Before: the acknowledged client sent the oversized frame, the server closed the
    connection, the client resent it after every reconnect, so nothing behind it arrived and
    flush ran into its deadline."""
    limit = 4096
    server = server_factory("--tcp_only", "--max_frame_size", str(limit))
    client = LogClient("127.0.0.1", server.tcp_port, ack=True, max_frame_size=limit)
    assert client.log("info", "before the big one")
    assert not client.log("info", "x" * (2 * limit))
    assert not client.log("info", "y" * (2 * limit))
    assert client.log("info", "after the big ones")
    assert client.flush(20), client.last_error
    client.close()
    assert client.oversized == 2
    server.wait_for_text("after the big ones")
    assert not [ln for ln in server.lines() if "exceeds the limit" in ln]
    handler = LogServerHandler("127.0.0.1", server.tcp_port, max_frame_size=limit)
    app_logger.addHandler(handler)
    app_logger.info("z" * (2 * limit))
    app_logger.info("handler after the big one")
    handler.flush()
    assert handler.client.oversized == 1
    server.wait_for_text("handler after the big one")
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "frame limit" in ln]
    assert len(warnings) == 2, "one warning per client"


def test_an_acked_client_closes_the_socket_the_server_closed_before_reconnecting(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """Before: after the server closed an acknowledged connection the reconnect replaced
    the socket without closing the old one (a ResourceWarning for each reconnect)."""
    log_dir = tmp_path / "logs"
    first = server_factory("--tcp_only", log_dir=log_dir)
    port = first.tcp_port
    client = LogClient("127.0.0.1", port, ack=True, reconnect_max_s=0.2)
    client.log("info", "before the restart")
    assert client.flush(10), client.last_error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert first.stop() == 0
        second = server_factory("--tcp_only", "--port", str(port), log_dir=log_dir)
        client.log("info", "after the restart")
        assert client.flush(30), client.last_error
        second.wait_for_text("after the restart")
        gc.collect()
    client.close()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
