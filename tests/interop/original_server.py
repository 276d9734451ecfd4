"""An emulation of the original project's server's acceptance rules, run as a real process
by tests/interop/test_original_server.py: our clients must satisfy it with their HelloMsg
option on (TCP) and by falling back to LogBridge (gRPC).

Rules (issue 18):
- TCP: every connection must open with a HelloMsg (standard, unpacked encoding; root struct
  with 0 data words); after it only packed LoggerMsg frames are accepted (a zero-length frame
  is a keep-alive). A connection that starts without a HelloMsg has all its messages dropped,
  silently: the original answers nothing. It never writes to a client.
- gRPC: only `logservice.LogBridge` is served; a call to `logservice.LogService` gets
  UNIMPLEMENTED, as from any gRPC server that does not know the service.

Every accepted hello and message is written as one JSON line to `--record`, flushed at once;
a message's `fields` use the vectors' names (schema/vectors/README.md).
Usage: original_server.py --port-file PATH --record PATH; the port file gets
`{"tcp": port, "grpc": port}` (free loopback ports).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import IO, Any

import capnp
import grpc
from log_server_client.generated import log_service_pb2 as pb

TEXT_FIELDS = (
    "timestamp", "hostname", "logger_name", "module", "filename", "function_name",
    "line_number", "message", "path_name", "process_id", "process_name", "thread_id",
    "thread_name", "service_name", "stack_trace",
)  # fmt: skip


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


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
            fields = {name: getattr(msg, _camel(name)) for name in TEXT_FIELDS}
            fields["level"] = str(msg.level).upper()
            recorder.write({"conn": conn_id, "message": msg.message, "fields": fields})


def _request_fields(request: Any) -> dict[str, str]:
    fields = {name: getattr(request, name) for name in TEXT_FIELDS}
    fields["level"] = pb.Level.Name(request.level)
    return fields


def grpc_server(recorder: Recorder) -> tuple[grpc.Server, int]:
    """LogBridge only, its three methods recording each message."""

    def record(requests: Any) -> Any:
        for request in requests:
            recorder.write({"conn": "grpc", "message": request.message,
                            "fields": _request_fields(request)})  # fmt: skip
        return pb.LogResponse(success=True)

    handlers = {
        "LogMessage": grpc.unary_unary_rpc_method_handler(
            lambda request, _: record([request]),
            request_deserializer=pb.LogRequest.FromString,
            response_serializer=pb.LogResponse.SerializeToString,
        ),
        "StreamLogs": grpc.stream_unary_rpc_method_handler(
            lambda requests, _: record(requests),
            request_deserializer=pb.LogRequest.FromString,
            response_serializer=pb.LogResponse.SerializeToString,
        ),
        "LogBatch": grpc.unary_unary_rpc_method_handler(
            lambda batch, _: record(batch.requests),
            request_deserializer=pb.LogBatchRequest.FromString,
            response_serializer=pb.LogResponse.SerializeToString,
        ),
    }
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("logservice.LogBridge", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    schema = _schema()
    listener = socket.create_server(("127.0.0.1", 0))
    with open(args.record, "a", encoding="utf-8") as out:
        recorder = Recorder(out)
        _grpc, grpc_port = grpc_server(recorder)
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"tcp": listener.getsockname()[1], "grpc": grpc_port}, f)
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
