"""OTLP logs ingest next to LogBatch, in the same run: the same messages (the loadgen fields,
mapped as docs/protocol.md says) as LogBatch over native gRPC, OTLP Export over native gRPC,
and OTLP/HTTP `POST /v1/logs` (protobuf), each into a fresh server. Requests are serialized
before the clock starts; `calls_in_flight` threads each use their own channel or connection;
the clock stops when the last message is in the file. Rounds alternate the three, and the
ratio is of the medians (the machine is noisy)."""

from __future__ import annotations

import http.client
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import loadgen

ROUND_TIMEOUT_S = 120


def logbatch_bodies(n: int, calls_in_flight: int, per_call: int) -> list[list[bytes]]:
    from log_server.generated import log_service_pb2 as pb

    f = loadgen.FIELDS
    fields = dict(
        timestamp=f["timestamp"],
        hostname=f["hostname"],
        logger_name=f["loggerName"],
        filename=f["filename"],
        function_name=f["functionName"],
        line_number=f["lineNumber"],
        process_id=f["processId"],
        thread_name=f["threadName"],
    )
    return _per_connection(
        n,
        calls_in_flight,
        per_call,
        lambda conn, ids: pb.LogBatchRequest(
            requests=[
                pb.LogRequest(level=pb.INFO, message=loadgen.message_text(conn, i), **fields)
                for i in ids
            ]
        ).SerializeToString(),
    )


def otlp_bodies(n: int, calls_in_flight: int, per_call: int) -> list[list[bytes]]:
    """What an SDK sends for the same messages: one resource and scope per request."""
    from datetime import datetime

    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    f = loadgen.FIELDS
    nanos = int(datetime.fromisoformat(f["timestamp"]).timestamp()) * 1_000_000_000 + 123_456_000
    attributes = [
        KeyValue(key="code.file.path", value=AnyValue(string_value=f["filename"])),
        KeyValue(key="code.function.name", value=AnyValue(string_value=f["functionName"])),
        KeyValue(key="code.line.number", value=AnyValue(int_value=int(f["lineNumber"]))),
        KeyValue(key="thread.name", value=AnyValue(string_value=f["threadName"])),
    ]

    def body(conn: int, ids: range) -> bytes:
        request = otlp_pb.ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(
            [
                KeyValue(key="host.name", value=AnyValue(string_value=f["hostname"])),
                KeyValue(key="process.pid", value=AnyValue(int_value=int(f["processId"]))),
            ]
        )
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = f["loggerName"]
        for i in ids:
            record = scope_logs.log_records.add()
            record.time_unix_nano = nanos
            record.severity_number = 9
            record.body.string_value = loadgen.message_text(conn, i)
            record.attributes.extend(attributes)
        return bytes(request.SerializeToString())

    return _per_connection(n, calls_in_flight, per_call, body)


def _per_connection(
    n: int, k: int, per_call: int, encode: Callable[[int, range], bytes]
) -> list[list[bytes]]:
    out = []
    for conn, count in enumerate(loadgen.split_counts(n, k)):
        out.append(
            [encode(conn, range(s, min(count, s + per_call))) for s in range(0, count, per_call)]
        )
    return out


def _grpc_sender(path: str) -> Callable[[int, list[bytes]], None]:
    import grpc

    def send(port: int, calls: list[bytes]) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(path)
            for body in calls:
                call(body, timeout=60)

    return send


def _http_send(port: int, calls: list[bytes]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for body in calls:
            connection.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"/v1/logs answered {response.status}")
    finally:
        connection.close()


def _round(
    start_server: Callable[..., Any],
    send: Callable[[int, list[bytes]], None],
    bodies: list[list[bytes]],
    n: int,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-otlp-") as tmp:
        log_dir = Path(tmp)
        max_files = str(n * 400 // (10 * 1024 * 1024) + 5)
        proc, _, grpc_port, _ = start_server(log_dir, "--max_files", max_files)
        active = str(log_dir / "_main.log")
        watcher = loadgen.Watcher(active + "*")
        watcher.skip_existing()
        errors: list[BaseException] = []

        def sender(calls: list[bytes]) -> None:
            try:
                send(grpc_port, calls)
            except BaseException as exc:
                errors.append(exc)

        cpu_before = loadgen.cpu_seconds(proc.pid)
        threads = [threading.Thread(target=sender, args=(c,)) for c in bodies]
        start = time.perf_counter()
        for t in threads:
            t.start()
        deadline = start + ROUND_TIMEOUT_S
        while watcher.poll() < n and time.perf_counter() < deadline and not errors:
            time.sleep(watcher.poll_s)
        elapsed = time.perf_counter() - start
        for t in threads:
            t.join(timeout=10)
        cpu = loadgen.cpu_seconds(proc.pid) - cpu_before
        watcher.close()
        proc.stop()
        check = loadgen.verify_files(loadgen.files_oldest_first(active), n, len(bodies), True)
    complete = watcher.seen >= n and not errors
    return {
        "msgs_per_s": n / elapsed if complete else 0.0,
        "cpu_us_per_msg": cpu / n * 1e6,
        "verified": check.ok and complete,
        "verification": asdict(check),
        "errors": [repr(e) for e in errors[:3]],
    }


def bench_otlp(
    start_server: Callable[..., Any],
    n: int,
    rounds: int = 3,
    calls_in_flight: int = 4,
    per_call: int = 1000,
) -> dict[str, Any]:
    kinds: dict[str, tuple[Callable[[int, list[bytes]], None], list[list[bytes]]]] = {
        "logbatch": (
            _grpc_sender("/logservice.LogService/LogBatch"),
            logbatch_bodies(n, calls_in_flight, per_call),
        ),
        "otlp_grpc": (
            _grpc_sender("/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
            otlp_bodies(n, calls_in_flight, per_call),
        ),
    }
    kinds["otlp_http"] = (_http_send, kinds["otlp_grpc"][1])
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, (send, bodies) in kinds.items():
            results[kind].append(_round(start_server, send, bodies, n))
    rate = {k: statistics.median(r["msgs_per_s"] for r in rs) for k, rs in results.items()}
    cpu = {k: statistics.median(r["cpu_us_per_msg"] for r in rs) for k, rs in results.items()}
    verified = all(r["verified"] for rs in results.values() for r in rs)
    row = {
        "name": "OTLP logs vs LogBatch",
        "n": n,
        "rounds": rounds,
        "calls_in_flight": calls_in_flight,
        "per_call": per_call,
        **{f"{k}_msgs_per_s": round(v) for k, v in rate.items()},
        **{f"{k}_server_cpu_us_per_msg": round(v, 3) for k, v in cpu.items()},
        "otlp_grpc_ratio": round(rate["otlp_grpc"] / rate["logbatch"], 3)
        if rate["logbatch"]
        else 0,
        "otlp_http_ratio": round(rate["otlp_http"] / rate["logbatch"], 3)
        if rate["logbatch"]
        else 0,
        "verified": verified,
        "verification": {k: [r["verification"] for r in rs] for k, rs in results.items()},
        "errors": {k: [e for r in rs for e in r["errors"]] for k, rs in results.items()},
    }
    print(
        f"  OTLP ({per_call}/call, {calls_in_flight} in flight, median of {rounds}): "
        f"LogBatch {row['logbatch_msgs_per_s']:,} msgs/s "
        f"({row['logbatch_server_cpu_us_per_msg']} µs CPU/msg), "
        f"OTLP gRPC {row['otlp_grpc_msgs_per_s']:,} ({row['otlp_grpc_server_cpu_us_per_msg']} µs, "
        f"ratio {row['otlp_grpc_ratio']}), "
        f"OTLP/HTTP {row['otlp_http_msgs_per_s']:,} ({row['otlp_http_server_cpu_us_per_msg']} µs, "
        f"ratio {row['otlp_http_ratio']}); verified: {verified}",
        flush=True,
    )
    return row
