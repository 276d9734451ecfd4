"""The original project's clients against log_server (issue 18), by an emulation of their
dialect written from the observed wire format, not from our client library: a HelloMsg first
on every connection (5 pointers, or 4 from older builds, or none from the oldest), packed
LoggerMsg frames, a zero-length keep-alive every 80 ms, a 200 ms write deadline, and on a
failed write a reconnect with backoff, a new HelloMsg and one retry of that message. The
clients never read the socket."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from support import RunningServer, frame, free_port, hello_payload, msg_frame, start_server

pytestmark = pytest.mark.slow

KEEP_ALIVE_S = 0.08
WRITE_DEADLINE_S = 0.2
HOST = "build-7"


class OriginalClient:
    """One emulated client. `pointers`: 5 or 4 (the HelloMsg's two shapes), or 0 (no hello)."""

    def __init__(self, port: int, name: str, pointers: int = 5) -> None:
        self.port, self.name, self.pointers = port, name, pointers
        self.hellos = 0
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._keep_alive = threading.Thread(target=self._keep_alive_loop, daemon=True)
        self._keep_alive.start()

    def log(self, message: str, level: str = "info", **fields: str) -> None:
        data = msg_frame(message=message, level=level, serviceName=self.name, **fields)
        try:
            self._send(data)
            return
        except OSError:
            pass
        delay = 0.05
        for _ in range(30):
            try:
                with self._lock:
                    self._connect()
                break
            except OSError:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        self._send(data)  # the one retry; an error here is the message's loss, and the test's

    def close(self) -> None:
        self._closed.set()
        self._keep_alive.join(5)
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _send(self, data: bytes) -> None:
        with self._lock:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            try:
                self._sock.sendall(data)
            except OSError:
                self._sock.close()
                self._sock = None
                raise

    def _connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WRITE_DEADLINE_S)
        local, peer = sock.getsockname(), sock.getpeername()
        texts = [self.name, HOST, f"{local[0]}:{local[1]}", f"{peer[0]}:{peer[1]}", ""]
        try:
            if self.pointers:
                sock.sendall(frame(hello_payload(texts[: self.pointers])))
                self.hellos += 1
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def _keep_alive_loop(self) -> None:
        while not self._closed.wait(KEEP_ALIVE_S):
            try:
                self._send(frame(b""))
            except OSError:
                pass  # reconnected by the next tick or the next message


def on_disk(server: RunningServer, name: str) -> list[str]:
    return [m.group(1) for ln in server.lines() if (m := re.search(rf" {name} #(\d+)( |$)", ln))]


def junk(server: RunningServer) -> list[str]:
    """Lines a HelloMsg decoded as a LoggerMsg would leave: level NOTSET, its texts in the
    columns (the emulated clients' messages are INFO and name no host)."""
    return [
        ln for ln in server.lines() if "NOTSET" in ln or (HOST in ln and " connection_" not in ln)
    ]


@pytest.mark.parametrize("decoder", ["native", "python"])
def test_original_clients_leave_exactly_their_messages(server_factory, decoder) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--decoder", decoder, "--tcp_only")
    clients = {
        "svc-five": OriginalClient(server.tcp_port, "svc-five", 5),
        "svc-four": OriginalClient(server.tcp_port, "svc-four", 4),
        "svc-none": OriginalClient(server.tcp_port, "svc-none", 0),
    }
    count = 150
    try:
        for i in range(count):
            for name, client in clients.items():
                client.log(f"{name} #{i}")
            if i % 50 == 0:
                time.sleep(KEEP_ALIVE_S * 2)  # let keep-alives in between the messages
    finally:
        for client in clients.values():
            client.close()
    server.wait_for(lambda _: all(len(on_disk(server, name)) >= count for name in clients))
    for name in clients:
        assert on_disk(server, name) == [str(i) for i in range(count)], name
    assert not junk(server)
    lines = server.lines()
    for name in ("svc-five", "svc-four"):
        opened = [ln for ln in lines if "connection_opened" in ln and f"{name}@{HOST} (" in ln]
        assert len(opened) == 1, (name, opened)
    closed = server.wait_for_text(f"svc-five@{HOST} (127.0.0.1:")
    assert any(f"svc-five@{HOST}" in ln and f"messages={count}" in ln for ln in closed)


def test_a_2_mib_message_lands_with_the_defaults(server: RunningServer) -> None:
    client = OriginalClient(server.tcp_port, "svc-big")
    big = "x" * (2 * 1024 * 1024)
    try:
        client.log("svc-big #0", stackTrace=big)
        client.log("svc-big #1")
    finally:
        client.close()
    server.wait_for(lambda _: len(on_disk(server, "svc-big")) >= 2)
    line = next(ln for ln in server.lines() if ln.endswith(" svc-big #0") or big[:64] in ln)
    assert big in line
    assert not [ln for ln in server.lines() if "frame_rejected" in ln]


def test_sigterm_with_a_keep_alive_client_connected_returns_promptly(
    server: RunningServer,
) -> None:
    """The drain waits for messages, not bytes: a client that only sends keep-alives is idle.
    The bound tells an idle drain (a fraction of a second) from one that ran to its 5 s
    deadline, as every drain did while keep-alives counted as activity."""
    client = OriginalClient(server.tcp_port, "svc-idle")
    try:
        client.log("svc-idle #0")
        server.wait_for(lambda _: on_disk(server, "svc-idle") == ["0"])
        time.sleep(KEEP_ALIVE_S * 5)
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert elapsed < 3.5, f"SIGTERM took {elapsed:.1f} s: the drain waited for keep-alives"
    assert on_disk(server, "svc-idle") == ["0"]


def test_a_client_reconnects_with_a_new_hello_after_a_restart(tmp_path: Path) -> None:
    log_dir, port = tmp_path / "logs", free_port()
    server = start_server(log_dir, "--port", str(port), "--tcp_only")
    client = OriginalClient(port, "svc-again")
    try:
        for i in range(20):
            client.log(f"svc-again #{i}")
        server.wait_for(lambda _: len(on_disk(server, "svc-again")) >= 20)
        assert server.stop(signal.SIGTERM) == 0
        server = start_server(log_dir, "--port", str(port), "--tcp_only")
        # The keep-alives find the old connection gone and reconnect, with a new hello.
        server.wait_for_text(f"connection from svc-again@{HOST} (127.0.0.1:")
        for i in range(20, 40):
            client.log(f"svc-again #{i}")
        server.wait_for(lambda _: len(on_disk(server, "svc-again")) >= 40)
        assert on_disk(server, "svc-again") == [str(i) for i in range(40)]
        assert client.hellos >= 2
        assert not junk(server)
    finally:
        client.close()
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
