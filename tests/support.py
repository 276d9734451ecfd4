"""Test helpers: the real server as a subprocess on free loopback ports, and real clients."""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import capnp
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema" / "logger.capnp"
START_TIMEOUT_S = 20.0

capnp.remove_import_hook()
LOGGER_SCHEMA: Any = capnp.load(str(SCHEMA))


def encode_msg(packed: bool = True, **fields: Any) -> bytes:
    """One LoggerMsg, as an existing client encodes it (packed) or in standard encoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        msg = LOGGER_SCHEMA.LoggerMsg.new_message(**fields)
        return bytes(msg.to_bytes_packed() if packed else msg.to_bytes())


def hello_payload(texts: list[str]) -> bytes:
    """A HelloMsg as the original project's newer clients send it (standard encoding, one
    segment, a root struct of 0 data words and n Text pointers), by an encoder written
    independently of the library that the server's recogniser could share bugs with."""
    n = len(texts)
    words = [struct.pack("<Q", n << 48)]  # root: struct, offset 0, 0 data words, n pointers
    blobs: list[bytes] = []
    tail = 1 + n  # word index where the next text blob goes
    for i, text in enumerate(texts):
        raw = text.encode() + b"\0"
        padded = raw + b"\0" * (-len(raw) % 8)
        offset = tail - (1 + i + 1)
        words.append(struct.pack("<Q", 1 | (offset << 2) | (2 << 32) | (len(raw) << 35)))
        blobs.append(padded)
        tail += len(padded) // 8
    segment = b"".join(words) + b"".join(blobs)
    return struct.pack("<II", 0, len(segment) // 8) + segment


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def msg_frame(packed: bool = True, **fields: Any) -> bytes:
    return frame(encode_msg(packed, **fields))


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    log_dir: Path
    tcp_port: int
    grpc_port: int | None
    stderr_path: Path
    args: list[str] = field(default_factory=list)
    metrics_port: int | None = None  # with --metrics_port

    @property
    def active_log(self) -> Path:
        return self.log_dir / "_main.log"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.tcp_port), timeout=10)

    def send(self, data: bytes) -> None:
        with self.connect() as sock:
            sock.sendall(data)

    def health(self) -> str:
        with self.connect() as sock:
            sock.sendall(b"health\n")
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def log_files(self) -> list[Path]:
        """Oldest first: _main.log.N-1 ... _main.log.0, _main.log."""
        rotated = sorted(
            (p for p in self.log_dir.glob("_main.log.*")),
            key=lambda p: int(p.name.rsplit(".", 1)[1]),
            reverse=True,
        )
        return [*rotated, self.active_log]

    def lines(self) -> list[str]:
        """Whole lines only: a read can land while the writer is part-way through a line."""
        out: list[str] = []
        for path in self.log_files():
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:  # rotated away while we were reading the others
                continue
            out.extend(text[: text.rfind("\n") + 1].splitlines())
        return out

    def wait_for(
        self, predicate: Callable[[list[str]], bool], timeout_s: float = 15.0
    ) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.lines()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s; last lines:\n" + "\n".join(lines[-10:])
                )
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.stderr()}")
            time.sleep(0.02)

    def wait_for_text(self, text: str, count: int = 1, timeout_s: float = 15.0) -> list[str]:
        return self.wait_for(lambda ls: sum(text in line for line in ls) >= count, timeout_s)

    def wait_for_line(self, text: str, timeout_s: float = 15.0) -> str:
        """The first line containing `text`, once there is one."""
        lines = self.wait_for_text(text, 1, timeout_s)
        return next(line for line in lines if text in line)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_server(
    log_dir: Path,
    *args: str,
    expect_ready: bool = True,
    stderr: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> RunningServer:
    """Start `python -m log_server` on free ports (port 0) and wait for its ready line.
    stderr goes to a file the test can read, unless `stderr` (a descriptor) says otherwise;
    `preexec_fn` runs in the child before the server starts (e.g. to set its limits)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir.parent / f"{log_dir.name}-stderr-{time.monotonic_ns()}.txt"
    argv = [
        sys.executable,
        "-m",
        "log_server",
        "--log_dir",
        str(log_dir),
        "--port",
        "0",
        "--grpc_port",
        "0",
        *args,
    ]
    with open(stderr_path, "w") as err:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err if stderr is None else stderr,
            text=True,
            preexec_fn=preexec_fn,
        )
    assert process.stdout is not None
    ready = ""
    if select.select([process.stdout], [], [], START_TIMEOUT_S)[0]:
        ready = process.stdout.readline()
    process.stdout.close()  # the server prints nothing else to stdout
    if not ready.startswith("log_server ready"):
        process.kill()
        process.wait()
        raise AssertionError(f"no ready line: {ready!r}\n{stderr_path.read_text()}")
    parts = dict(p.split("=", 1) for p in ready.split()[2:])
    tcp_port = int(parts["tcp"].rsplit(":", 1)[1])
    grpc_port = int(parts["grpc"].rsplit(":", 1)[1]) if "grpc" in parts else None
    metrics_port = int(parts["metrics"].rsplit(":", 1)[1]) if "metrics" in parts else None
    return RunningServer(
        process, log_dir, tcp_port, grpc_port, stderr_path, list(argv), metrics_port
    )


def full_device_at(path: Path) -> None:
    """Put a character device like /dev/full (1, 7) at `path`: every write to it fails with
    ENOSPC, a real write error. Not a link to /dev/full: the server refuses links (issue 14
    item 12). Needs the right to make device nodes (root, as in CI); skips without it."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 7))
    except PermissionError as exc:
        pytest.skip(f"cannot make a device node like /dev/full here: {exc.strerror}")


def seq_of(line: str) -> int:
    return int(line.split(None, 1)[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def numbered_frames(tag: str, count: int) -> bytes:
    """`count` packed frames with the messages `<tag> 0000000 ...` to `<tag> <count-1> ...`,
    built from one encoded message with its digits patched (pycapnp is slow per message).
    The tag fills the first word so the digits lie in one run of literal packed words."""
    lead = f"{tag[:8]:<8}"
    template = frame(encode_msg(True, message=f"{lead}n=9999999 padding-text"))
    at = template.index(b"9999999")
    head, tail = template[:at], template[at + 7 :]
    data = b"".join([head + b"%07d" % i + tail for i in range(count)])
    last = data[-len(template) :]
    assert LOGGER_SCHEMA.LoggerMsg.from_bytes_packed(last[4:]).message == (
        f"{lead}n={count - 1:07d} padding-text"
    )
    return data


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


VECTORS_PATH = Path(__file__).resolve().parent.parent / "schema" / "vectors" / "vectors.json"


def load_vectors() -> dict[str, Any]:
    import json

    vectors: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
    return vectors


def expected_line(template: str, seq: int, received_at: str) -> str:
    """A vector's line with its placeholders filled in (schema/vectors/README.md)."""
    if template.startswith('{"seq":'):
        line = template.replace("{seq}", str(seq), 1)
    else:
        line = f"{seq:>10}" + template[len("{seq}") :]
    return line.replace("{received_at}", received_at)


def fill_disk(disk: Path) -> Path:
    """Take every free byte of a small file system (the `tiny_disk` fixture) but what its
    files already hold in their pages; remove the returned file to give the room back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: RunningServer, accept: str | None = None) -> Samples:
    """Every sample of one GET /metrics: (sample name, labels) -> value."""
    assert server.metrics_port is not None
    request = urllib.request.Request(f"http://127.0.0.1:{server.metrics_port}/metrics")
    if accept is not None:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
