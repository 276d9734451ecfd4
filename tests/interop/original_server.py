"""An emulation of the original project's server's TCP acceptance rules, run as a real
process by tests/interop/test_original_server.py: our clients must satisfy it with their
HelloMsg option on.

Rules (issue 18): every connection must open with a HelloMsg (standard, unpacked encoding;
root struct with 0 data words); after it only packed LoggerMsg frames are accepted (a
zero-length frame is a keep-alive). A connection that starts without a HelloMsg has all its
messages dropped, silently: the original answers nothing. It never writes to a client.

Every accepted hello and message is written as one JSON line to `--record`, flushed at once.
Usage: original_server.py --port-file PATH --record PATH (port 0: a free loopback port).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import threading
from importlib import resources
from typing import IO, Any

import capnp


def _schema() -> Any:
    parser = capnp.SchemaParser()
    path = resources.files("log_server_client") / "schema" / "logger.capnp"
    with resources.as_file(path) as file:
        return parser.load(str(file))


def is_hello_shape(payload: bytes) -> bool:
    """Standard encoding, one segment, root struct pointer with 0 data words."""
    if len(payload) < 16 or payload[:4] != b"\0\0\0\0":
        return False
    pointer = int.from_bytes(payload[8:16], "little")
    return pointer & 3 == 0 and (pointer >> 32) & 0xFFFF == 0


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class Recorder:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._out.write(json.dumps(record) + "\n")
            self._out.flush()


def serve_connection(sock: socket.socket, conn_id: int, schema: Any, recorder: Recorder) -> None:
    greeted: bool | None = None  # None: no frame yet
    with sock:
        while True:
            header = _read_exact(sock, 4)
            if header is None:
                return
            (length,) = struct.unpack(">I", header)
            payload = _read_exact(sock, length) if length else b""
            if payload is None:
                return
            if not payload:
                continue  # keep-alive
            if greeted is None:
                greeted = is_hello_shape(payload)
                if greeted:
                    with schema.HelloMsg.from_bytes(payload) as hello:
                        recorder.write({"conn": conn_id, "hello": hello.to_dict()})
                    continue
                recorder.write({"conn": conn_id, "dropped_connection": "no HelloMsg"})
            if not greeted:
                continue  # the original drops everything of this connection
            try:
                msg = schema.LoggerMsg.from_bytes_packed(payload)
            except Exception as exc:  # not packed: rejected as the original would
                recorder.write({"conn": conn_id, "rejected": str(exc)[:200]})
                continue
            recorder.write(
                {
                    "conn": conn_id,
                    "level": str(msg.level),
                    "message": msg.message,
                    "serviceName": msg.serviceName,
                }
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    schema = _schema()
    listener = socket.create_server(("127.0.0.1", 0))
    with open(args.record, "a", encoding="utf-8") as out:
        recorder = Recorder(out)
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(listener.getsockname()[1]))
        os.replace(tmp, args.port_file)  # the test sees the whole port or none
        conn_id = 0
        while True:
            sock, _ = listener.accept()
            conn_id += 1
            threading.Thread(
                target=serve_connection, args=(sock, conn_id, schema, recorder), daemon=True
            ).start()


if __name__ == "__main__":
    main()
