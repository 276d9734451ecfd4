"""LogClient: log() encodes the frame and returns; a background thread sends."""

from __future__ import annotations

import collections
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from log_server_client.encoding import (
    Attributes,
    FrameEncoder,
    Level,
    hello_frame,
    message_fields,
    to_level,
)
from log_server_client.sender import BackgroundSender, OnFull, QueuedClient

# The opening of an acknowledged connection (docs/protocol.md, "Acknowledged mode").
ACK_HELLO = b"LSACKv1\n"
FRAME_HEADER_BYTES = 4
# The server's default --max_frame_size: a longer frame closes the connection.
DEFAULT_MAX_FRAME_BYTES = 10 * 1024 * 1024  # the server's --max_frame_size default


class TcpTransport:
    """With `ack=True` the server reports how many messages of this connection are on disk;
    frames stay in `unacked` until then and are sent again, first, after a reconnect."""

    def __init__(
        self,
        host: str,
        port: int,
        connect_timeout_s: float,
        ack: bool = False,
        unix_socket: str | None = None,
        hello_name: str | None = None,
    ) -> None:
        self.address = (host, port)
        self.hello_name = hello_name  # None: no HelloMsg (see LogClient's `hello`)
        self.unix_socket = unix_socket
        self.connect_timeout_s = connect_timeout_s
        self.ack = ack
        self.on_broken: Callable[[], None] = lambda: None
        self._sock: socket.socket | None = None
        self._unacked: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()

    def connect(self) -> None:
        self.close()  # the socket of a connection the server ended (acknowledged mode)
        sock = self._open()
        try:
            if self.hello_name is not None:
                sock.sendall(self._hello(sock))
            if self.ack:
                self._open_acknowledged(sock)
            sock.settimeout(None)
        except BaseException:
            sock.close()  # e.g. the server died during the hello: no socket left behind
            raise
        self._sock = sock

    def _hello(self, sock: socket.socket) -> bytes:
        """A HelloMsg for this connection: our name, host and the socket's own addresses."""
        local, peer = sock.getsockname(), sock.getpeername()
        as_text = (lambda a: f"{a[0]}:{a[1]}") if isinstance(local, tuple) else str
        return hello_frame(
            self.hello_name or "", socket.gethostname(), as_text(local), as_text(peer)
        )

    def _open(self) -> socket.socket:
        if self.unix_socket is None:
            sock = socket.create_connection(self.address, timeout=self.connect_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout_s)
            sock.connect(self.unix_socket)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_acknowledged(self, sock: socket.socket) -> None:
        """Say the hello, send again what is unacknowledged, start reading the acks."""
        sock.sendall(ACK_HELLO)
        answer = b""
        while len(answer) < len(ACK_HELLO):
            chunk = sock.recv(len(ACK_HELLO) - len(answer))
            if not chunk:
                break
            answer += chunk
        if answer != ACK_HELLO:
            raise ConnectionError("the log server does not support acknowledgements")
        with self._lock:
            resend = b"".join(self._unacked)
        sock.settimeout(None)
        if resend:
            sock.sendall(resend)
        threading.Thread(target=self._read_acks, args=(sock,), daemon=True).start()

    def send(self, batch: list[bytes]) -> None:
        assert self._sock is not None
        if not self.ack:
            self._check_open(self._sock)
            self._sock.sendall(b"".join(batch))
            return
        with self._lock:
            self._unacked.extend(batch)
        try:
            self._sock.sendall(b"".join(batch))
        except OSError:
            # The frames wait in `unacked`; the reconnect sends them again, first.
            self.on_broken()

    def outstanding(self) -> int:
        """Messages sent but not yet acknowledged (always 0 without `ack`)."""
        return len(self._unacked)

    def _read_acks(self, sock: socket.socket) -> None:
        acked = 0
        buffer = b""
        try:
            while chunk := sock.recv(4096):
                buffer += chunk
                while len(buffer) >= 8:
                    count = int.from_bytes(buffer[:8], "big")
                    buffer = buffer[8:]
                    with self._lock:
                        for _ in range(count - acked):
                            self._unacked.popleft()
                    acked = count
        except OSError:
            pass
        if sock is self._sock:
            self.on_broken()

    @staticmethod
    def _check_open(sock: socket.socket) -> None:
        """The server never writes on this connection, so anything readable means it closed
        (it restarted, say). Bytes sent into such a socket would vanish without an error, so
        find out before sending and reconnect instead. (Only acknowledgements close the
        remaining race; see the reliability issue.)"""
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        raise ConnectionResetError(f"the log server closed the connection ({data!r} pending)")

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.close()


class LogClient(QueuedClient):
    """Thread-safe client of the TCP protocol.

    `log()` fills in host, process, thread and call time, encodes the frame and queues it;
    it does not wait for the network. See BackgroundSender for the queue policies.
    `ack=True`: keep every message until the server says it is on disk, and send it again
    after a reconnect (at least once: a resent message may appear twice).
    `unix_socket`: the path of the server's `--unix_socket` (the same protocol), used
    instead of host and port. `max_frame_size`: the server's `--max_frame_size`; a message
    whose frame is larger is not sent (the server would close the connection, and in
    acknowledged mode the resend after every reconnect would stall everything behind it):
    it is counted in `oversized`, with one warning on stderr. `hello=True`: open every
    (re)connection with a HelloMsg (fromName = the service name), which the original
    project's server requires; our server accepts and ignores it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4020,
        *,
        queue_size: int = 100_000,
        on_full: OnFull = "block",
        block_timeout_s: float | None = None,
        connect_timeout_s: float = 5.0,
        reconnect_max_s: float = 5.0,
        logger_name: str = "",
        service_name: str = "",
        ack: bool = False,
        unix_socket: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_BYTES,
        hello: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.unix_socket = unix_socket
        self.max_frame_size = max_frame_size
        self.oversized = 0
        self._oversized_lock = threading.Lock()
        self.logger_name = logger_name
        self.service_name = service_name
        self._encoder = FrameEncoder()
        self._sender = BackgroundSender(
            TcpTransport(
                host,
                port,
                connect_timeout_s,
                ack,
                unix_socket,
                hello_name=(service_name or logger_name or "log_server_client") if hello else None,
            ),
            name=f"log_server_client-{unix_socket or f'{host}:{port}'}",
            queue_size=queue_size,
            on_full=on_full,
            block_timeout_s=block_timeout_s,
            reconnect_max_s=reconnect_max_s,
        )

    def log(
        self,
        level: Level | int | str,
        message: str,
        *,
        attributes: Attributes | None = None,
        **fields: Any,
    ) -> bool:
        """Queue one message; False only when the "drop" policy dropped it. `attributes`:
        structured key/value pairs (a mapping or a sequence of pairs, kept in order)."""
        return self.send_frame(self.encode(level, message, fields, attributes))

    def encode(
        self,
        level: Level | int | str,
        message: str,
        fields: dict[str, Any],
        attributes: Attributes | None = None,
    ) -> bytes:
        values = message_fields(self.logger_name, self.service_name, fields)
        return self._encoder.encode(to_level(level), str(message), values, attributes)

    def send_frame(self, frame: bytes) -> bool:
        """Queue an already encoded frame (the logging handler encodes its own); False when
        it was dropped (too large for the server, or the "drop" policy)."""
        if len(frame) - FRAME_HEADER_BYTES > self.max_frame_size:
            self._refuse_oversized(len(frame) - FRAME_HEADER_BYTES)
            return False
        return self._sender.put(frame)

    def _refuse_oversized(self, size: int) -> None:
        with self._oversized_lock:
            self.oversized += 1
            first = self.oversized == 1
        if first:
            print(
                f"log_server_client: a message of {size} bytes encoded is over the server's "
                f"frame limit ({self.max_frame_size} bytes, --max_frame_size) and was not "
                "sent; further ones are counted in `oversized`",
                file=sys.stderr,
            )
