"""LogClient: log() encodes the frame and returns; a background thread sends."""

from __future__ import annotations

import socket
from typing import Any

from log_server_client.encoding import FrameEncoder, Level, message_fields, to_level
from log_server_client.sender import BackgroundSender, OnFull, QueuedClient


class TcpTransport:
    def __init__(self, host: str, port: int, connect_timeout_s: float) -> None:
        self.address = (host, port)
        self.connect_timeout_s = connect_timeout_s
        self._sock: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=self.connect_timeout_s)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def send(self, batch: list[bytes]) -> None:
        assert self._sock is not None
        self._check_open(self._sock)
        self._sock.sendall(b"".join(batch))

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
    it does not wait for the network. See BackgroundSender for the queue policies."""

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
    ) -> None:
        self.host, self.port = host, port
        self.logger_name = logger_name
        self.service_name = service_name
        self._encoder = FrameEncoder()
        self._sender = BackgroundSender(
            TcpTransport(host, port, connect_timeout_s),
            name=f"log_server_client-{host}:{port}",
            queue_size=queue_size,
            on_full=on_full,
            block_timeout_s=block_timeout_s,
            reconnect_max_s=reconnect_max_s,
        )

    def log(self, level: Level | int | str, message: str, **fields: Any) -> bool:
        """Queue one message; False only when the "drop" policy dropped it."""
        return self._sender.put(self.encode(level, message, fields))

    def encode(self, level: Level | int | str, message: str, fields: dict[str, Any]) -> bytes:
        values = message_fields(self.logger_name, self.service_name, fields)
        return self._encoder.encode(to_level(level), str(message), values)

    def send_frame(self, frame: bytes) -> bool:
        """Queue an already encoded frame (the logging handler encodes its own)."""
        return self._sender.put(frame)
