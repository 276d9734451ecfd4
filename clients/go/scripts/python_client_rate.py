"""The Python client's batched rate, to compare with the Go client's BenchmarkServerThroughput.

Starts this checkout's server on free loopback ports, then for plain and acknowledged mode
times `count` LogClient.log() calls plus the flush that waits until all were handed to the
server (acknowledged: reported on disk), the span the Go benchmark times. The message is
the Go benchmark's: text "benchmark message <i>" and one attribute i=<i>. Every wait is
bounded.

Run from the repository root: .venv/bin/python clients/go/scripts/python_client_rate.py
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from log_server_client import LogClient

READY_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 120.0


def start_server(log_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """The server of this checkout on ports the system picks; returns it and its TCP port."""
    server_bin = Path(sys.executable).with_name("log_server")
    proc = subprocess.Popen(
        [str(server_bin), "--port", "0", "--grpc_port", "0", "--log_dir", str(log_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    found: list[int] = []
    ready = threading.Event()

    def read_ready_line() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("log_server ready"):
                found.extend(int(f.rsplit(":", 1)[1]) for f in line.split() if f.startswith("tcp="))
                ready.set()
        ready.set()

    threading.Thread(target=read_ready_line, daemon=True).start()
    if not ready.wait(READY_TIMEOUT_S) or not found:
        proc.kill()
        raise SystemExit(f"the server printed no ready line within {READY_TIMEOUT_S:.0f} s")
    return proc, found[0]


def rate(port: int, count: int, ack: bool) -> float:
    with LogClient("127.0.0.1", port, ack=ack, queue_size=count + 1) as client:
        if not client.wait_connected(10.0):
            raise SystemExit(f"could not connect to 127.0.0.1:{port}")
        start = time.perf_counter()
        for i in range(count):
            client.log("info", "benchmark message " + str(i), attributes={"i": str(i)})
        if not client.flush(FLUSH_TIMEOUT_S):
            raise SystemExit(f"{count} messages not delivered within {FLUSH_TIMEOUT_S:.0f} s")
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp) / "logs")
        try:
            for ack in (False, True):
                for _ in range(args.runs):
                    msgs_per_s = rate(port, args.count, ack)
                    mode = "ack" if ack else "plain"
                    print(f"python-client/{mode} {args.count} messages {msgs_per_s:,.0f} msgs/s")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":
    main()
