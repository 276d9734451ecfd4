"""Load generation and verification for `make bench`: frames encoded before the clock starts,
plain `sendall` over K connections, and an output watcher that stops the clock when the
last message is in the file. All traffic goes to loopback; every loop is bounded.

Message `i` on connection `c` carries the text `bmsg c-iiiiiii ` padded to 60 characters,
so the run can check afterwards that every message landed exactly once and in order.
"""

from __future__ import annotations

import glob
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MESSAGE_CHARS = 60
FILLER = "order accepted sym=ESZ4 qty=100 px=5321.25 side=BUY acct=A1 venue=XCME ref=Q"
ID_RE = re.compile(rb"bmsg (\d)-(\d{7}) ")
MARKER = b"bmsg "
SEND_SLICE_BYTES = 4 * 1024 * 1024

FIELDS = dict(
    timestamp="2026-11-27T12:34:56.123456+00:00",
    hostname="trd-host-01",
    loggerName="trading.oms",
    filename="order_mgr.py",
    functionName="submit_order",
    lineNumber="1234",
    processId="48213",
    threadName="MainThread",
)


def message_text(conn: int, i: int) -> str:
    # The 8-character lead fills the first word, so that in the packed encoding the id
    # lies inside one run of literal words (see capnp_blobs).
    return (f"[bench] bmsg {conn}-{i:07d} " + FILLER)[:MESSAGE_CHARS]


def split_counts(n: int, k: int) -> list[int]:
    base, extra = divmod(n, k)
    return [base + (1 if c < extra else 0) for c in range(k)]


def capnp_blobs(n: int, k: int, schema_path: Path) -> list[bytes]:
    """One blob of length-prefixed packed LoggerMsg frames per connection.

    Encoding a million messages with pycapnp takes seconds, so one message is encoded and
    its id digits are patched: the id is fixed-width ASCII (never zero bytes), so the packed
    encoding's layout is the same for every id. The first and last frames are decoded again
    as a check."""
    import capnp

    capnp.remove_import_hook()
    schema = capnp.load(str(schema_path))
    placeholder = message_text(9, 9_999_999)
    msg = schema.LoggerMsg.new_message(level="info", message=placeholder, **FIELDS)
    packed = msg.to_bytes_packed()
    template = struct.pack(">I", len(packed)) + packed
    at = template.index(b"9-9999999")
    head, tail = template[:at], template[at + 9 :]
    blobs = []
    for conn, count in enumerate(split_counts(n, k)):
        prefix = head + f"{conn}-".encode()
        blobs.append(b"".join([prefix + b"%07d" % i + tail for i in range(count)]))
    for blob in blobs:
        for frame in (blob[: len(template)], blob[-len(template) :]):
            decoded = schema.LoggerMsg.from_bytes_packed(frame[4:])
            assert ID_RE.search(decoded.message.encode()), decoded.message
    return blobs


def syslog_blobs(n: int, k: int) -> list[bytes]:
    """The same messages as RFC 3164 lines, for rsyslog."""
    head = "<134>Nov 27 12:34:56 trd-host-01 trading.oms[48213]: "
    return [
        "".join(f"{head}{message_text(conn, i)}\n" for i in range(count)).encode()
        for conn, count in enumerate(split_counts(n, k))
    ]


@dataclass
class Watcher:
    """Counts marker occurrences appended to files matching `pattern`, following each file by
    inode (rotated files keep being read through their open descriptors)."""

    pattern: str
    poll_s: float = 0.005
    seen: int = 0
    files: dict[int, object] = field(default_factory=dict)
    partial: dict[int, bytes] = field(default_factory=dict)

    def poll(self) -> int:
        return self.poll_marker(MARKER)

    def poll_marker(self, marker: bytes) -> int:
        for path in glob.glob(self.pattern):
            try:
                ino = os.stat(path).st_ino
            except FileNotFoundError:
                continue
            if ino not in self.files:
                try:
                    self.files[ino] = open(path, "rb")  # noqa: SIM115 (kept open on purpose)
                except FileNotFoundError:
                    continue
        for ino, fh in self.files.items():
            chunk = fh.read()  # type: ignore[attr-defined]
            if not chunk:
                continue
            # Count complete lines only: a read may end in the middle of a line (or marker).
            data = self.partial.pop(ino, b"") + chunk
            end = data.rfind(b"\n") + 1
            self.seen += data.count(marker, 0, end)
            if end < len(data):
                self.partial[ino] = data[end:]
        return self.seen

    def skip_existing(self) -> None:
        self.poll()
        self.seen = 0

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()  # type: ignore[attr-defined]


@dataclass
class LoadResult:
    n: int
    conns: int
    bytes_sent: int
    elapsed_s: float
    send_s: float
    complete: bool

    @property
    def msgs_per_s(self) -> float:
        return self.n / self.elapsed_s if self.complete else 0.0


def run_load(
    host: str, port: int, blobs: list[bytes], watcher: Watcher, n: int, timeout_s: float = 120.0
) -> LoadResult:
    """Send every blob on its own connection (after a barrier), then wait until the watcher
    has seen `n` messages or `timeout_s` passed."""
    barrier = threading.Barrier(len(blobs) + 1)
    send_done: list[float] = []
    errors: list[BaseException] = []

    def sender(blob: bytes) -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                barrier.wait(timeout=30)
                view = memoryview(blob)
                for start in range(0, len(blob), SEND_SLICE_BYTES):
                    sock.sendall(view[start : start + SEND_SLICE_BYTES])
                send_done.append(time.perf_counter())
        except BaseException as exc:  # reported below; the run is then incomplete
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(b,), daemon=True) for b in blobs]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    start = time.perf_counter()
    deadline = start + timeout_s
    complete = False
    while time.perf_counter() < deadline and not errors:
        if watcher.poll() >= n:
            complete = True
            break
        time.sleep(watcher.poll_s)
    end = time.perf_counter()
    for t in threads:
        t.join(timeout=5)
    if errors:
        raise RuntimeError(f"sender failed: {errors[0]!r}")
    return LoadResult(
        n,
        len(blobs),
        sum(map(len, blobs)),
        end - start,
        (max(send_done) if send_done else end) - start,
        complete,
    )


@dataclass
class Verification:
    ok: bool
    found: int
    missing: int
    duplicates: int
    out_of_order: int
    seq_errors: int

    def summary(self) -> str:
        return (
            f"found={self.found} missing={self.missing} dup={self.duplicates} "
            f"out_of_order={self.out_of_order} seq_errors={self.seq_errors}"
        )


def verify_files(paths: list[str], n: int, k: int, check_seq: bool) -> Verification:
    """Every id exactly once, ids in order per connection, and (our server) the global
    sequence strictly increasing across the files, read oldest first."""
    counts = split_counts(n, k)
    next_expected = [0] * k
    seen = [bytearray(c) for c in counts]
    found = duplicates = out_of_order = seq_errors = 0
    last_seq = 0
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                if check_seq:
                    head = line.split(None, 1)[0] if line.strip() else b""
                    if head.isdigit():
                        seq = int(head)
                        if seq <= last_seq:
                            seq_errors += 1
                        last_seq = seq
                match = ID_RE.search(line)
                if not match:
                    continue
                conn, i = int(match.group(1)), int(match.group(2))
                if conn >= k or i >= counts[conn]:
                    continue
                if seen[conn][i]:
                    duplicates += 1
                    continue
                seen[conn][i] = 1
                found += 1
                if i < next_expected[conn]:
                    out_of_order += 1
                next_expected[conn] = max(next_expected[conn], i + 1)
    missing = n - found
    ok = missing == 0 and duplicates == 0 and out_of_order == 0 and seq_errors == 0
    return Verification(ok, found, missing, duplicates, out_of_order, seq_errors)


def files_oldest_first(active: str) -> list[str]:
    rotated = sorted(glob.glob(active + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]), reverse=True)
    return [*rotated, active]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
