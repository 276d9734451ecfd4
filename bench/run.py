"""`make bench`: log_server against a private rsyslog on the same load, in the same run.

Prints a table (msgs/s, MB/s, server CPU µs/msg, ratios) with each goal of the benchmarks
issue marked met or not, and appends the raw results as JSON Lines to
bench/results/results.jsonl. Figures are ratios measured in one run: this machine is
noisy. Nothing here is a test; no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bench_forward
import bench_tail
import latency
import loadgen
import otlp

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "src" / "log_server" / "schema" / "logger.capnp"
RESULTS = ROOT / "bench" / "results" / "results.jsonl"
RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="bench")
# One main-queue worker: the default of several reorders a few hundred lines per million.
main_queue(queue.workerThreads="1")
ruleset(name="bench") {{
  action(type="omfile" file="{out}")
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


class Process:
    """A server started for one measurement and stopped by its PID."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        self.proc = subprocess.Popen(argv, **kwargs)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_log_server(log_dir: Path, *args: str) -> tuple[Process, int, int | None, float]:
    """Start our server on free ports; returns it, its ports and seconds until healthy."""
    started = time.perf_counter()
    proc = Process(
        [
            sys.executable,
            "-m",
            "log_server",
            "--log_dir",
            str(log_dir),
            "--port",
            "0",
            "--grpc_port",
            "0",
            "--stats_interval",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.proc.stdout is not None
    ready = proc.proc.stdout.readline()
    proc.proc.stdout.close()
    if not ready.startswith("log_server ready"):
        proc.stop()
        raise RuntimeError(f"log_server did not start: {ready!r}")
    parts = dict(p.split("=", 1) for p in ready.split()[2:])
    tcp = int(parts["tcp"].rsplit(":", 1)[1])
    grpc_port = int(parts["grpc"].rsplit(":", 1)[1]) if "grpc" in parts else None
    while True:
        with socket.create_connection(("127.0.0.1", tcp), timeout=5) as sock:
            sock.sendall(b"health\n")
            if sock.recv(100).startswith(b"OK"):
                break
        time.sleep(0.005)
    return proc, tcp, grpc_port, time.perf_counter() - started


def measure_tcp(
    name: str,
    proc: Process,
    port: int,
    blobs: list[bytes],
    n: int,
    out_glob: str,
    files: Callable[[], list[str]],
    check_seq: bool,
    output_bytes: Callable[[], int],
    before_stop: Callable[[], None] | None = None,
) -> dict[str, Any]:
    watcher = loadgen.Watcher(out_glob)
    watcher.skip_existing()
    cpu_before = loadgen.cpu_seconds(proc.pid)
    result = loadgen.run_load("127.0.0.1", port, blobs, watcher, n)
    cpu = loadgen.cpu_seconds(proc.pid) - cpu_before
    rss = loadgen.peak_rss_mb(proc.pid)
    watcher.close()
    if before_stop is not None:
        before_stop()
    proc.stop()
    check = loadgen.verify_files(files(), n, len(blobs), check_seq)
    row = {
        "name": name,
        "n": n,
        "conns": len(blobs),
        "complete": result.complete,
        "elapsed_s": round(result.elapsed_s, 4),
        "send_s": round(result.send_s, 4),
        "msgs_per_s": round(result.msgs_per_s),
        "in_MB_per_s": round(result.bytes_sent / result.elapsed_s / 1e6, 1),
        "out_bytes_per_line": round(output_bytes() / max(n, 1)),
        "server_cpu_us_per_msg": round(cpu / n * 1e6, 3),
        "peak_rss_mb": round(rss, 1),
        "verified": check.ok,
        "verification": asdict(check),
    }
    print(
        f"  {name:<22} {row['msgs_per_s']:>10,} msgs/s  {row['in_MB_per_s']:>6} MB/s in  "
        f"{row['server_cpu_us_per_msg']:>6} µs CPU/msg  RSS {row['peak_rss_mb']} MB  "
        f"verified: {check.summary()}",
        flush=True,
    )
    return row


_SCRAPER = """
import sys, time, urllib.request
url, every_s, max_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
scrapes = failures = 0
deadline = time.monotonic() + max_s
while time.monotonic() < deadline:
    time.sleep(every_s)
    if sys.stdin in __import__("select").select([sys.stdin], [], [], 0)[0]:
        break  # told to stop: a line, or end of input
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
        scrapes += 1
    except OSError:
        failures += 1
print(scrapes, failures, flush=True)
"""


class Scraper:
    """GET /metrics every `every_s` from a process of its own, as Prometheus would (a thread
    here would take the load generator's interpreter lock), until closed (bounded: at most
    `max_s`); closed before the server stops."""

    def __init__(self, port: int, every_s: float, max_s: float = 300.0) -> None:
        self.scrapes = self.failures = 0
        url = f"http://127.0.0.1:{port}/metrics"
        self._child = subprocess.Popen(
            [sys.executable, "-c", _SCRAPER, url, str(every_s), str(max_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def close(self) -> None:
        """Before the server is stopped."""
        out, _ = self._child.communicate("stop\n", timeout=10)
        self.scrapes, self.failures = (int(x) for x in out.split())


def bench_log_server(
    n: int,
    k: int,
    blobs: list[bytes],
    decoder: str,
    extra: tuple[str, ...] = (),
    name: str | None = None,
    log_dir: Path | None = None,
    ready: Callable[[int], None] | None = None,
    scrape_every_s: float | None = None,
) -> dict[str, Any]:
    """TCP ingest; `extra` flags for the server, `ready(port)` once it listens; with
    `scrape_every_s`, also --metrics_port and a scraper hitting it."""
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        log_dir = log_dir or Path(tmp)
        # Enough rotated files to keep the whole run for verification (JSON lines are longer).
        max_files = str(n * 600 // (10 * 1024 * 1024) + 5)
        metrics_port = free_port()
        metrics = () if scrape_every_s is None else ("--metrics_port", str(metrics_port))
        proc, port, _, startup_s = start_log_server(
            log_dir, "--tcp_only", "--decoder", decoder, "--max_files", max_files, *extra, *metrics
        )
        scraper = None if scrape_every_s is None else Scraper(metrics_port, scrape_every_s)
        if ready is not None:
            ready(port)
        active = str(log_dir / "_main.log")
        scraped = "" if scraper is None else ", /metrics scraped"
        row = measure_tcp(
            name or f"log_server ({decoder}{scraped})",
            proc,
            port,
            blobs,
            n,
            active + "*",
            lambda: loadgen.files_oldest_first(active),
            True,
            lambda: sum(os.path.getsize(p) for p in loadgen.files_oldest_first(active)),
            None if scraper is None else scraper.close,
        )
        row["startup_to_healthy_s"] = round(startup_s, 3)
        if scraper is not None:
            row["scrapes"], row["scrape_failures"] = scraper.scrapes, scraper.failures
            print(
                f"  {'':<22} {scraper.scrapes} scrapes of /metrics, {scraper.failures} failed",
                flush=True,
            )
        return row


def bench_metrics_scrape(n: int, k: int, blobs: list[bytes], runs: int) -> dict[str, Any]:
    """Issue 16: TCP ingest with /metrics scraped every 100 ms, against ingest without
    --metrics_port, alternating; the medians are compared (goal >= 0.95)."""
    print(f"{n:,} messages over {k} connections, /metrics scraped every 100 ms vs off ...")
    plain, scraped = [], []
    for _ in range(runs):
        warm_page_cache(2 * n * 260)
        plain.append(bench_log_server(n, k, blobs, "native"))
        warm_page_cache(2 * n * 260)
        scraped.append(bench_log_server(n, k, blobs, "native", scrape_every_s=0.1))
    off, on = median_row(plain), median_row(scraped)
    ratio = on["msgs_per_s"] / off["msgs_per_s"]
    print(f"  scraped / not scraped: {ratio:.3f} (goal >= 0.95)", flush=True)
    return {
        "name": "metrics scrape cost",
        "off_msgs_per_s": off["msgs_per_s"],
        "scraped_msgs_per_s": on["msgs_per_s"],
        "ratio": round(ratio, 4),
        "scrapes": on["scrapes"],
        "verified": all(r["verified"] for r in plain + scraped),
        "verification": [r["verification"] for r in plain + scraped],
    }


def start_rsyslog(tmp: str) -> tuple[Process, int, str] | None:
    """A private rsyslogd on a free loopback port writing to `tmp`/out.log; None when it is
    not installed."""
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.path.exists(rsyslogd):
        print("  rsyslog: not installed (bench/setup.sh installs it); skipped", flush=True)
        return None
    port = free_port()
    out = os.path.join(tmp, "out.log")
    work = os.path.join(tmp, "work")
    os.mkdir(work)
    conf = os.path.join(tmp, "rsyslog.conf")
    Path(conf).write_text(RSYSLOG_CONF.format(work=work, port=port, out=out))
    proc = Process(
        [rsyslogd, "-n", "-f", conf, "-i", os.path.join(tmp, "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return proc, port, out


def bench_rsyslog(n: int, k: int, blobs: list[bytes]) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="bench-rsyslog-") as tmp:
        started = start_rsyslog(tmp)
        if started is None:
            return None
        proc, port, out = started
        return measure_tcp(
            "rsyslog (1 worker)",
            proc,
            port,
            blobs,
            n,
            out,
            lambda: [out],
            False,
            lambda: os.path.getsize(out),
        )


def bench_latency(rates: tuple[int, ...], seconds: float, runs: int) -> list[dict[str, Any]]:
    """Receipt -> disk at each steady rate on one connection, log_server and rsyslog
    alternating; one row per (server, rate) with the medians over the runs."""
    import capnp

    capnp.remove_import_hook()
    frame = latency.capnp_frame(capnp.load(str(SCHEMA)))
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(runs):
        for rate in rates:
            with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
                proc, port, _, _ = start_log_server(Path(tmp), "--tcp_only")
                path = os.path.join(tmp, "_main.log")
                samples.setdefault(("log_server", rate), []).append(
                    latency.measure(port, path, frame, rate, seconds)
                )
                proc.stop()
            with tempfile.TemporaryDirectory(prefix="bench-latency-rsyslog-") as tmp:
                started = start_rsyslog(tmp)
                if started is None:
                    continue
                rproc, rport, out = started
                # rsyslog creates its file on the first line: one before the clock starts.
                with socket.create_connection(("127.0.0.1", rport)) as sock:
                    sock.sendall(latency.syslog_frame("warm-up"))
                deadline = time.monotonic() + 5
                while not os.path.exists(out) and time.monotonic() < deadline:
                    time.sleep(0.01)
                samples.setdefault(("rsyslog", rate), []).append(
                    latency.measure(rport, out, latency.syslog_frame, rate, seconds)
                )
                rproc.stop()
    rows = []
    for (server, rate), runs_ in samples.items():
        row: dict[str, Any] = {"name": f"latency {server}", "server": server, "rate": rate}
        for key in ("p50_ms", "p99_ms", "max_ms"):
            row[key] = round(statistics.median(r[key] for r in runs_), 3)
        row["seen"] = sum(r["seen"] for r in runs_)
        row["sent"] = sum(r["sent"] for r in runs_)
        row["runs"] = runs_
        print(
            f"  latency {server:<10} at {rate:>5}/s: p50 {row['p50_ms']} ms, "
            f"p99 {row['p99_ms']} ms, max {row['max_ms']} ms "
            f"({row['seen']}/{row['sent']} seen, medians of {len(runs_)})",
            flush=True,
        )
        rows.append(row)
    return rows


def bench_grpc_batch(n: int, calls_in_flight: int = 4, per_call: int = 1000) -> dict[str, Any]:
    """gRPC ingest through LogBatch (what our clients use): requests serialized before the
    clock starts, `calls_in_flight` threads each with its own channel; the clock stops when
    the last message is in the file."""
    import grpc

    from log_server.generated import log_service_pb2 as pb

    base = {k: v for k, v in loadgen.FIELDS.items()}
    proto_fields = dict(
        timestamp=base["timestamp"],
        hostname=base["hostname"],
        logger_name=base["loggerName"],
        filename=base["filename"],
        function_name=base["functionName"],
        line_number=base["lineNumber"],
        process_id=base["processId"],
        thread_name=base["threadName"],
    )
    counts = loadgen.split_counts(n, calls_in_flight)
    bodies: list[list[bytes]] = []
    for conn, count in enumerate(counts):
        calls = []
        for start in range(0, count, per_call):
            batch = pb.LogBatchRequest(
                requests=[
                    pb.LogRequest(
                        level=pb.INFO, message=loadgen.message_text(conn, i), **proto_fields
                    )
                    for i in range(start, min(count, start + per_call))
                ]
            )
            calls.append(batch.SerializeToString())
        bodies.append(calls)
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        log_dir = Path(tmp)
        max_files = str(n * 260 // (10 * 1024 * 1024) + 5)
        proc, _, grpc_port, _ = start_log_server(log_dir, "--max_files", max_files)
        active = str(log_dir / "_main.log")
        watcher = loadgen.Watcher(active + "*")
        watcher.skip_existing()
        errors: list[BaseException] = []

        def sender(calls: list[bytes]) -> None:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                    call = channel.unary_unary("/logservice.LogService/LogBatch")
                    for body in calls:
                        call(body, timeout=60)
            except BaseException as exc:
                errors.append(exc)

        cpu_before = loadgen.cpu_seconds(proc.pid)
        threads = [threading.Thread(target=sender, args=(c,)) for c in bodies]
        start = time.perf_counter()
        for t in threads:
            t.start()
        deadline = start + 120
        while watcher.poll() < n and time.perf_counter() < deadline and not errors:
            time.sleep(watcher.poll_s)
        elapsed = time.perf_counter() - start
        for t in threads:
            t.join(timeout=10)
        cpu = loadgen.cpu_seconds(proc.pid) - cpu_before
        watcher.close()
        proc.stop()
        check = loadgen.verify_files(loadgen.files_oldest_first(active), n, calls_in_flight, True)
    row = {
        "name": "gRPC LogBatch",
        "n": n,
        "calls_in_flight": calls_in_flight,
        "per_call": per_call,
        "complete": watcher.seen >= n and not errors,
        "msgs_per_s": round(n / elapsed) if watcher.seen >= n else 0,
        "server_cpu_us_per_msg": round(cpu / n * 1e6, 3),
        "verified": check.ok,
        "verification": asdict(check),
    }
    print(
        f"  gRPC LogBatch ({per_call}/call, {calls_in_flight} in flight) "
        f"{row['msgs_per_s']:>10,} msgs/s  {row['server_cpu_us_per_msg']} µs CPU/msg  "
        f"verified: {check.summary()}",
        flush=True,
    )
    return row


UNARY_RUNS = 5
COUNTING_SERVER = Path(__file__).parent / "grpc_counting_server.py"


def bench_grpc_unary(n: int, in_flight: int = 64) -> dict[str, Any]:
    """Unary LogMessage calls/s against log_server and against grpc.aio servers whose handler
    only counts (bench/grpc_counting_server.py: the issue's reference, and a leaner floor),
    with the same client load (grpc.aio, `in_flight` calls at once)."""
    import asyncio

    import grpc

    from log_server.generated import log_service_pb2 as pb

    body = pb.LogRequest(level=pb.INFO, message="unary bench").SerializeToString()

    async def load(port: int) -> float:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/logservice.LogService/LogMessage")
            remaining = n

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await call(body, timeout=30)

            start = time.perf_counter()
            await asyncio.gather(*[worker() for _ in range(in_flight)])
            return n / (time.perf_counter() - start)

    def start_counting(style: str) -> tuple[Process, int]:
        counting = Process(
            [sys.executable, str(COUNTING_SERVER), "--style", style],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert counting.proc.stdout is not None
        return counting, int(counting.proc.stdout.readline())

    rates: dict[str, list[float]] = {"log_server": [], "reference": [], "lean": []}
    with tempfile.TemporaryDirectory(prefix="bench-unary-") as tmp:
        for _ in range(UNARY_RUNS):
            proc, _, grpc_port, _ = start_log_server(Path(tmp) / "logs")
            rates["log_server"].append(asyncio.run(load(grpc_port or 0)))
            proc.stop()
            for style in ("reference", "lean"):
                counting, port = start_counting(style)
                rates[style].append(asyncio.run(load(port)))
                counting.stop()
    median = {name: statistics.median(runs) for name, runs in rates.items()}
    row = {
        "name": "gRPC unary",
        "n": n,
        "in_flight": in_flight,
        "log_server_calls_per_s": round(median["log_server"]),
        "counting_calls_per_s": round(median["reference"]),
        "lean_counting_calls_per_s": round(median["lean"]),
        "ratio": round(median["log_server"] / median["reference"], 3),
        "ratio_to_lean": round(median["log_server"] / median["lean"], 3),
        "runs": {name: [round(r) for r in runs] for name, runs in rates.items()},
    }
    print(
        f"  gRPC unary LogMessage: log_server {row['log_server_calls_per_s']:,} calls/s, "
        f"counting grpc.aio server {row['counting_calls_per_s']:,} (ratio {row['ratio']}), "
        f"lean counting server {row['lean_counting_calls_per_s']:,} "
        f"(ratio {row['ratio_to_lean']}; median of {UNARY_RUNS} each, interleaved)",
        flush=True,
    )
    return row


FRONT_ROUNDS = 12
FRONT_BATCH = 1000


class _GrpcWebClient:
    """gRPC-Web calls over `in_flight` keep-alive HTTP/1.1 connections, one call at a time
    each; every answer is the same bytes, so each is read by its length."""

    def __init__(self, port: int, path: str, body: bytes, in_flight: int) -> None:
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\n"
            "Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n"
            f"Origin: http://localhost:8080\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.port, self.in_flight = port, in_flight
        self.streams: list[Any] = []
        self.answer_bytes = 0

    async def connect(self) -> None:
        import asyncio

        for _ in range(self.in_flight):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            self.answer_bytes = len(head) + length
            self.streams.append((reader, writer))

    async def calls(self, count: int) -> None:
        import asyncio

        remaining = count

        async def worker(reader: Any, writer: Any) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                writer.write(self.request)
                await reader.readexactly(self.answer_bytes)

        await asyncio.gather(*[worker(r, w) for r, w in self.streams])

    def close(self) -> None:
        for _, writer in self.streams:
            writer.close()


def bench_grpc_front(unary_n: int = 6000, batch_n: int = 600_000) -> dict[str, Any]:
    """Native gRPC through the gRPC-Web front listener (the default) against grpcio bound
    to the port directly (--no_grpc_web), and gRPC-Web, from one client process. Both
    servers run at once and are measured in short alternating rounds (FRONT_ROUNDS, the
    order swapped each round), so that both see the same machine load: wall-clock rates
    here swing by 2x between minutes. Server CPU per message, which load moves much less,
    is given too."""
    import asyncio

    import grpc

    from log_server.generated import log_service_pb2 as pb

    request = pb.LogRequest(level=pb.INFO, message="front bench", hostname="bench-host")
    one = request.SerializeToString()
    batch = pb.LogBatchRequest(requests=[request] * FRONT_BATCH).SerializeToString()
    unary_round = unary_n // FRONT_ROUNDS
    batches_round = batch_n // FRONT_BATCH // FRONT_ROUNDS
    keys = ("direct_unary", "front_unary", "web_unary", "direct_batch", "front_batch", "web_batch")
    elapsed = dict.fromkeys(keys, 0.0)
    cpu = dict.fromkeys(keys, 0.0)
    done = dict.fromkeys(keys, 0)

    async def measure(key: str, pid: int, run: Any, messages: int) -> None:
        cpu_before, start = loadgen.cpu_seconds(pid), time.perf_counter()
        await run()
        elapsed[key] += time.perf_counter() - start
        cpu[key] += loadgen.cpu_seconds(pid) - cpu_before
        done[key] += messages

    async def main(ports: dict[str, int], pids: dict[str, int]) -> None:
        channels = {m: grpc.aio.insecure_channel(f"127.0.0.1:{ports[m]}") for m in ports}
        web_unary = _GrpcWebClient(
            ports["front"],
            "/logservice.LogService/LogMessage",
            b"\x00" + len(one).to_bytes(4, "big") + one,
            64,
        )
        web_batch = _GrpcWebClient(
            ports["front"],
            "/logservice.LogService/LogBatch",
            b"\x00" + len(batch).to_bytes(4, "big") + batch,
            4,
        )
        await web_unary.connect()
        await web_batch.connect()
        unary = {
            m: ch.unary_unary("/logservice.LogService/LogMessage") for m, ch in channels.items()
        }
        batched = {
            m: ch.unary_unary("/logservice.LogService/LogBatch") for m, ch in channels.items()
        }
        for m in ports:
            await unary[m](one, timeout=30)  # connected before any clock starts

        def native_unary(m: str) -> Any:
            async def run() -> None:
                remaining = unary_round

                async def worker() -> None:
                    nonlocal remaining
                    while remaining > 0:
                        remaining -= 1
                        await unary[m](one, timeout=30)

                await asyncio.gather(*[worker() for _ in range(64)])

            return run

        def native_batch(m: str) -> Any:
            async def run() -> None:
                pending = batches_round

                async def worker() -> None:
                    nonlocal pending
                    while pending > 0:
                        pending -= 1
                        await batched[m](batch, timeout=60)

                await asyncio.gather(*[worker() for _ in range(4)])

            return run

        for round_no in range(FRONT_ROUNDS):
            order = ["direct", "front", "web"]
            if round_no % 2:
                order.reverse()
            for side in order:
                pid = pids["front" if side == "web" else side]
                if side == "web":
                    await measure(
                        "web_unary", pid, lambda: web_unary.calls(unary_round), unary_round
                    )
                    await measure(
                        "web_batch",
                        pid,
                        lambda: web_batch.calls(batches_round),
                        batches_round * FRONT_BATCH,
                    )
                else:
                    await measure(f"{side}_unary", pid, native_unary(side), unary_round)
                    await measure(
                        f"{side}_batch", pid, native_batch(side), batches_round * FRONT_BATCH
                    )
        web_unary.close()
        web_batch.close()
        for channel in channels.values():
            await channel.close()

    with tempfile.TemporaryDirectory(prefix="bench-front-") as tmp:
        max_files = "2"  # rates only: what was written is not read back
        servers = {
            "direct": start_log_server(
                Path(tmp) / "direct", "--max_files", max_files, "--no_grpc_web"
            ),
            "front": start_log_server(Path(tmp) / "front", "--max_files", max_files),
        }
        try:
            asyncio.run(
                main(
                    {m: int(s[2] or 0) for m, s in servers.items()},
                    {m: s[0].pid for m, s in servers.items()},
                )
            )
        finally:
            for proc, *_ in servers.values():
                proc.stop()
    rate = {k: done[k] / elapsed[k] for k in keys}
    cpu_us = {k: cpu[k] / done[k] * 1e6 for k in keys}
    row = {
        "name": "gRPC port: front listener vs direct, and gRPC-Web",
        "unary_n": unary_n,
        "batch_n": batch_n,
        "per_call": FRONT_BATCH,
        "rounds": FRONT_ROUNDS,
        "direct_unary_calls_per_s": round(rate["direct_unary"]),
        "front_unary_calls_per_s": round(rate["front_unary"]),
        "unary_ratio": round(rate["front_unary"] / rate["direct_unary"], 3),
        "direct_batch_msgs_per_s": round(rate["direct_batch"]),
        "front_batch_msgs_per_s": round(rate["front_batch"]),
        "batch_ratio": round(rate["front_batch"] / rate["direct_batch"], 3),
        "grpc_web_unary_calls_per_s": round(rate["web_unary"]),
        "grpc_web_batch_msgs_per_s": round(rate["web_batch"]),
        "server_cpu_us_per_msg": {k: round(v, 3) for k, v in cpu_us.items()},
    }
    print(
        f"  native gRPC through the front / direct: unary {row['front_unary_calls_per_s']:,} / "
        f"{row['direct_unary_calls_per_s']:,} calls/s (ratio {row['unary_ratio']}), LogBatch "
        f"{row['front_batch_msgs_per_s']:,} / {row['direct_batch_msgs_per_s']:,} msgs/s "
        f"(ratio {row['batch_ratio']}); gRPC-Web unary {row['grpc_web_unary_calls_per_s']:,} "
        f"calls/s, LogBatch {row['grpc_web_batch_msgs_per_s']:,} msgs/s; server CPU µs/msg "
        f"{row['server_cpu_us_per_msg']} ({FRONT_ROUNDS} alternating rounds)",
        flush=True,
    )
    return row


def bench_handler(n: int, reps: int = 3) -> dict[str, Any]:
    """Time per `logger.info()` call in the application thread: LogServerHandler vs
    logging.FileHandler, interleaved in one run; plus messages/s until all are on disk."""
    import logging

    from log_server_client import LogServerHandler

    def timed(handler: logging.Handler, tag: str) -> float:
        logger = logging.getLogger(f"bench.{tag}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        start = time.perf_counter()
        for i in range(n):
            logger.info("handler bench %s %d", tag, i)
        elapsed = time.perf_counter() - start
        logger.removeHandler(handler)
        return elapsed / n

    with tempfile.TemporaryDirectory(prefix="bench-handler-") as tmp:
        proc, port, _, _ = start_log_server(Path(tmp) / "logs", "--tcp_only")
        ours, pycapnp_only, files, e2e = [], [], [], []
        for rep in range(reps):
            file_handler = logging.FileHandler(os.path.join(tmp, f"file-{rep}.log"))
            file_handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            files.append(timed(file_handler, f"file{rep}"))
            file_handler.close()
            watcher = loadgen.Watcher(os.path.join(tmp, "logs", "_main.log*"))
            watcher.skip_existing()
            start = time.perf_counter()
            handler = LogServerHandler("127.0.0.1", port)
            ours.append(timed(handler, f"server{rep}"))
            handler.flush()
            deadline = time.perf_counter() + 60
            while watcher.poll_marker(b"handler bench server") < n:
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.005)
            e2e.append(n / (time.perf_counter() - start))
            watcher.close()
            handler.close()
            handler = LogServerHandler("127.0.0.1", port, compiled_encoder=False)
            pycapnp_only.append(timed(handler, f"pycapnp{rep}"))
            handler.close()
        proc.stop()
    ours.sort(), pycapnp_only.sort(), files.sort(), e2e.sort()
    row = {
        "name": "logging handler",
        "n": n,
        "reps": reps,
        "handler_us_per_call": round(ours[reps // 2] * 1e6, 2),
        "filehandler_us_per_call": round(files[reps // 2] * 1e6, 2),
        "handler_pycapnp_us_per_call": round(pycapnp_only[reps // 2] * 1e6, 2),
        "end_to_end_msgs_per_s": round(e2e[reps // 2]),
    }
    row["ratio"] = round(row["handler_us_per_call"] / row["filehandler_us_per_call"], 3)
    row["ratio_pycapnp"] = round(
        row["handler_pycapnp_us_per_call"] / row["filehandler_us_per_call"], 3
    )
    print(
        f"  logger.info(): LogServerHandler {row['handler_us_per_call']} µs/call, "
        f"FileHandler {row['filehandler_us_per_call']} µs/call (ratio {row['ratio']}; "
        f"with the pycapnp encoder {row['handler_pycapnp_us_per_call']} µs/call, "
        f"ratio {row['ratio_pycapnp']}); "
        f"end to end {row['end_to_end_msgs_per_s']:,} msgs/s",
        flush=True,
    )
    return row


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput; peak RSS and start-up are the worst seen."""
    ranked = sorted(runs, key=lambda r: r["msgs_per_s"])
    row = dict(ranked[len(ranked) // 2])
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    if "startup_to_healthy_s" in row:
        row["startup_to_healthy_s"] = max(r["startup_to_healthy_s"] for r in runs)
    if len(runs) > 1:
        print(
            f"  median of {len(runs)} {row['name']}: {row['msgs_per_s']:,} msgs/s, "
            f"{row['server_cpu_us_per_msg']} µs CPU/msg",
            flush=True,
        )
    return row


def warm_page_cache(size: int) -> None:
    """Write and delete `size` bytes where the next run writes, just before it. This VM
    reports memory the guest frees to its host (virtio-balloon free page reporting), which
    takes it back within seconds; the next use of such a page costs a fault on the host (here
    the first 226 MB written into the page cache went at 0.7 GB/s, the next at 3-4 GB/s).
    Without this, a run met that cost unevenly, and log_server, whose lines are twice as
    long as rsyslog's, met it twice as much."""
    chunk = b"\0" * (1 << 20)
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        with open(Path(tmp) / "warm", "wb") as fh:
            for _ in range(size // len(chunk) + 1):
                fh.write(chunk)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="messages per TCP run")
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument(
        "--python-n",
        type=int,
        default=200_000,
        help="messages for the pycapnp fallback run (slower)",
    )
    parser.add_argument(
        "--grpc-n", type=int, default=300_000, help="messages for the gRPC LogBatch run"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs of log_server and rsyslog, alternating; the medians are compared",
    )
    parser.add_argument(
        "--one-conn-n", type=int, default=200_000, help="messages for the one-connection runs"
    )
    parser.add_argument(
        "--latency-s", type=float, default=3.0, help="seconds per latency run (each rate)"
    )
    parser.add_argument(
        "--only-grpc-front",
        action="store_true",
        help="run only the gRPC port's front listener / gRPC-Web part",
    )
    parser.add_argument(
        "--only-metrics",
        action="store_true",
        help="run only the /metrics scrape cost part (TCP ingest scraped vs not)",
    )
    parser.add_argument(
        "--otlp-n", type=int, default=200_000, help="messages for each OTLP / LogBatch round"
    )
    parser.add_argument(
        "--only-otlp",
        action="store_true",
        help="run only OTLP Export (gRPC and HTTP) next to LogBatch",
    )
    parser.add_argument(
        "--only-latency",
        action="store_true",
        help="run only the receipt -> disk latency part (log_server and rsyslog)",
    )
    parser.add_argument(
        "--forward-n", type=int, default=1_000_000, help="lines per --forward kafka:// run"
    )
    parser.add_argument(
        "--only-forward", action="store_true", help="run only the --forward kafka:// part"
    )
    args = parser.parse_args()
    if args.only_forward:
        row = run_forward(args.forward_n, args.conns, args.runs)
        print_goals(forward_goals(row))
        append_results([row], args.forward_n, args.conns)
        return 0
    if args.only_latency:
        bench_latency((100, 1000), args.latency_s, args.runs)
        return 0
    if args.only_otlp:
        row = otlp.bench_otlp(start_log_server, args.otlp_n, args.runs)
        append_results([row], args.otlp_n, 0)
        return 0 if row["verified"] else 1
    if args.only_grpc_front:
        row = bench_grpc_front()
        append_results([row], row["batch_n"], 0)
        return 0
    n, k = args.n, args.conns
    if args.only_metrics:
        row = bench_metrics_scrape(n, k, loadgen.capnp_blobs(n, k, SCHEMA), args.runs)
        append_results([row], n, k)
        return 0 if row["verified"] else 1
    print(
        f"log_server benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        flush=True,
    )
    print(f"encoding {n:,} messages over {k} connections ...", flush=True)
    capnp_blobs = loadgen.capnp_blobs(n, k, SCHEMA)
    syslog = loadgen.syslog_blobs(n, k)
    print(
        f"frames: {len(capnp_blobs[0]) // max(1, loadgen.split_counts(n, k)[0])} B capnp, "
        f"{len(syslog[0]) // max(1, loadgen.split_counts(n, k)[0])} B syslog",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    ours_runs, peer_runs = [], []
    for _ in range(args.runs):
        warm_page_cache(2 * n * 260)
        ours_runs.append(bench_log_server(n, k, capnp_blobs, "native"))
        warm_page_cache(2 * n * 260)
        peer_run = bench_rsyslog(n, k, syslog)
        if peer_run:
            peer_runs.append(peer_run)
    rows += ours_runs + peer_runs
    ours = median_row(ours_runs)
    peer = median_row(peer_runs) if peer_runs else None
    one_n = args.one_conn_n
    print(f"{one_n:,} messages over one connection ...", flush=True)
    one_blobs = loadgen.capnp_blobs(one_n, 1, SCHEMA)
    one_syslog = loadgen.syslog_blobs(one_n, 1)
    ours_one_runs, peer_one_runs = [], []
    for _ in range(args.runs):
        warm_page_cache(2 * one_n * 260)
        ours_one_runs.append(bench_log_server(one_n, 1, one_blobs, "native"))
        warm_page_cache(2 * one_n * 260)
        peer_run = bench_rsyslog(one_n, 1, one_syslog)
        if peer_run:
            peer_one_runs.append(peer_run)
    rows += ours_one_runs + peer_one_runs
    ours_one = median_row(ours_one_runs)
    peer_one = median_row(peer_one_runs) if peer_one_runs else None
    fallback_blobs = loadgen.capnp_blobs(args.python_n, k, SCHEMA)
    rows.append(bench_log_server(args.python_n, k, fallback_blobs, "python"))
    warm_page_cache(2 * args.grpc_n * 260)
    grpc_batch = bench_grpc_batch(args.grpc_n)
    rows.append(grpc_batch)
    unary = bench_grpc_unary(5000)
    rows.append(unary)
    front = bench_grpc_front()
    rows.append(front)
    otlp_row = otlp.bench_otlp(start_log_server, args.otlp_n, args.runs)
    rows.append(otlp_row)
    latency_rows = bench_latency((100, 1000), args.latency_s, args.runs)
    rows += latency_rows
    lat = {(r["server"], r["rate"]): r for r in latency_rows}

    def lat_ratio(rate: int, key: str) -> float | None:
        peer_lat = lat.get(("rsyslog", rate))
        return peer_lat and lat[("log_server", rate)][key] / peer_lat[key]

    metrics = bench_metrics_scrape(n, k, capnp_blobs, args.runs)
    rows.append(metrics)
    handler = bench_handler(20_000)
    rows.append(handler)
    rows.append(bench_tail.bench_tail())
    forward = run_forward(args.forward_n, k, args.runs)
    rows.append(forward)

    goals = [
        (
            f"{k}-conn TCP msgs/s vs rsyslog",
            ">= 1.5",
            peer and ours["msgs_per_s"] / peer["msgs_per_s"],
            lambda r: r >= 1.5,
        ),
        (
            f"{k}-conn server CPU/msg vs rsyslog",
            "<= 0.7",
            peer and ours["server_cpu_us_per_msg"] / peer["server_cpu_us_per_msg"],
            lambda r: r <= 0.7,
        ),
        (
            "1-conn TCP msgs/s vs rsyslog",
            ">= 1.5",
            peer_one and ours_one["msgs_per_s"] / peer_one["msgs_per_s"],
            lambda r: r >= 1.5,
        ),
        (
            "1-conn server CPU/msg vs rsyslog",
            "<= 0.7",
            peer_one and ours_one["server_cpu_us_per_msg"] / peer_one["server_cpu_us_per_msg"],
            lambda r: r <= 0.7,
        ),
        (
            "receipt -> disk p50 at 100/s vs rsyslog",
            "<= 1.0",
            lat_ratio(100, "p50_ms"),
            lambda r: r <= 1.0,
        ),
        ("receipt -> disk p50 at 100/s (ms)", "-", lat[("log_server", 100)]["p50_ms"], None),
        (
            "receipt -> disk p99 at 100/s (ms)",
            "<= 2",
            lat[("log_server", 100)]["p99_ms"],
            lambda r: r <= 2,
        ),
        ("receipt -> disk p99 at 100/s vs rsyslog", "-", lat_ratio(100, "p99_ms"), None),
        ("receipt -> disk p50 at 1000/s vs rsyslog", "-", lat_ratio(1000, "p50_ms"), None),
        ("receipt -> disk p99 at 1000/s vs rsyslog", "-", lat_ratio(1000, "p99_ms"), None),
        (
            "receipt -> disk p99 at 1000/s (ms)",
            "<= 20",
            lat[("log_server", 1000)]["p99_ms"],
            lambda r: r <= 20,
        ),
        ("peak RSS in the 1M run (MB)", "<= 150", ours["peak_rss_mb"], lambda r: r <= 150),
        ("start-up to healthy (s)", "<= 1", ours["startup_to_healthy_s"], lambda r: r <= 1),
        (
            "gRPC LogBatch msgs/s vs our TCP",
            ">= 0.5",
            grpc_batch["msgs_per_s"] / ours["msgs_per_s"],
            lambda r: r >= 0.5,
        ),
        ("gRPC unary vs counting grpc.aio", ">= 0.9", unary["ratio"], lambda r: r >= 0.9),
        ("gRPC unary vs lean counting server", "-", unary["ratio_to_lean"], None),
        (
            "native unary via gRPC-Web front vs direct",
            ">= 0.9",
            front["unary_ratio"],
            lambda r: r >= 0.9,
        ),
        (
            "native LogBatch via front vs direct",
            ">= 0.9",
            front["batch_ratio"],
            lambda r: r >= 0.9,
        ),
        ("gRPC-Web unary calls/s", "-", front["grpc_web_unary_calls_per_s"], None),
        (
            "OTLP Export (gRPC) msgs/s vs LogBatch",
            ">= 0.5",
            otlp_row["otlp_grpc_ratio"],
            lambda r: r >= 0.5,
        ),
        ("OTLP/HTTP /v1/logs msgs/s vs LogBatch", "-", otlp_row["otlp_http_ratio"], None),
        ("gRPC-Web LogBatch msgs/s", "-", front["grpc_web_batch_msgs_per_s"], None),
        ("logger.info() vs FileHandler", "<= 1.0", handler["ratio"], lambda r: r <= 1.0),
        (
            f"{k}-conn TCP msgs/s, /metrics scraped vs off",
            ">= 0.95",
            metrics["ratio"],
            lambda r: r >= 0.95,
        ),
        *forward_goals(forward),
    ]
    print_goals(goals)
    for row in rows:
        if not row.get("verified", True):
            print(f"VERIFICATION FAILED for {row['name']}: {row.get('verification')}")
    append_results(rows, n, k)
    return 0 if all(r.get("verified", True) for r in rows) else 1


Goal = tuple[str, str, Any, Callable[[float], bool] | None]


def print_goals(goals: list[Goal]) -> None:
    print(f"\n{'goal':<42} target    measured  met")
    for label, target, value, ok in goals:
        shown = "n/a" if value is None or value is False else f"{value:.3g}"
        if ok is None:
            met = "(shown, not a goal)"
        else:
            met = "n/a" if shown == "n/a" else ("yes" if ok(value) else "NO")
        print(f"{label:<42} {target:<9} {shown:>8}  {met}")


def append_results(rows: list[dict[str, Any]], n: int, k: int) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "n": n, "conns": k}
        fh.write(json.dumps({**record, "machine": platform.node(), "rows": rows}) + "\n")
    print(f"raw results appended to {RESULTS.relative_to(ROOT)}")


def run_forward(n: int, k: int, runs: int) -> dict[str, Any]:
    print(f"--forward kafka:// with {n:,} messages over {k} connections ...", flush=True)
    blobs = loadgen.capnp_blobs(n, k, SCHEMA)

    def ingest(
        name: str, extra: tuple[str, ...], log_dir: Path, ready: Callable[[int], None] | None
    ) -> dict[str, Any]:
        warm_page_cache(2 * n * 260)
        return bench_log_server(n, k, blobs, "native", extra, name, log_dir, ready)

    return bench_forward.bench_forward(ingest, start_log_server, n, runs, ("text", "json"))


def forward_goals(row: dict[str, Any]) -> list[Goal]:
    skipped = "skipped" in row
    ratios = {} if skipped else row["forward_vs_ingest"]
    return [
        (
            "forwarder (text lines) vs TCP ingest",
            ">= 0.5",
            ratios.get("text"),
            lambda r: r >= 0.5,
        ),
        ("forwarder (JSON lines) vs TCP ingest", "-", ratios.get("json"), None),
        (
            "TCP ingest, forwarding on vs off",
            ">= 0.8",
            None if skipped else row["ingest_on_vs_off"],
            lambda r: r >= 0.8,
        ),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
