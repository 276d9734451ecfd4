"""Receipt -> disk latency at a steady rate on one connection, for any server that writes
lines to a file: log_server and rsyslog are measured by the same code in the same run.

Each message carries its number (`lat <i> `); the sender notes the clock right before the
frame goes to the socket, after building it (pycapnp takes 10-20 µs for a frame, an f-string
for rsyslog's under 1 µs, and neither is the server's time). A thread blocked on inotify
reads the file the moment the server writes it and notes when each line became visible, so
the figure is the server's delay plus loopback and one wake-up, with no polling interval
in it (the first version polled every 0.5 ms, as much as rsyslog's whole latency here).
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
MARKER = b" lat "


class _Inotify:
    """Just enough of inotify(7) through ctypes: one watch for writes to one file."""

    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, path.encode(), _IN_MODIFY) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def wait(self, timeout_s: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if ready:
            try:
                os.read(self.fd, 65536)
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class _Reader:
    """Follows one file from its current end; records (message number, visible_at) per line."""

    path: str
    seen: list[tuple[int, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        notify = _Inotify(self.path)
        buffer = b""
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            while not self.stop.is_set():
                chunk = fh.read()
                if not chunk:
                    notify.wait(0.05)
                    continue
                seen_at = time.perf_counter()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    at = line.find(MARKER)
                    if at >= 0:
                        self.seen.append((int(line[at + 5 :].split()[0]), seen_at))
        notify.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    port: int, path: str, frame: Callable[[str], bytes], rate: int, seconds: float
) -> dict[str, float | int]:
    """Send `rate * seconds` messages at `rate` on one connection to `port`; `frame(text)`
    makes one message in the server's protocol; the lines appear in `path`."""
    reader = _Reader(path)
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    time.sleep(0.05)  # the reader is at the file's end before the first message
    count = int(rate * seconds)
    sent_at = [0.0] * count
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.001))
            data = frame(f"lat {i} ")
            sent_at[i] = time.perf_counter()
            sock.sendall(data)
        deadline = time.perf_counter() + 5
        while len(reader.seen) < count and time.perf_counter() < deadline:
            time.sleep(0.01)
    reader.stop.set()
    thread.join(timeout=2)
    ms = [(seen_at - sent_at[i]) * 1e3 for i, seen_at in reader.seen]
    return {
        "rate": rate,
        "sent": count,
        "seen": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
    }


def capnp_frame(schema: object) -> Callable[[str], bytes]:
    def frame(text: str) -> bytes:
        payload = schema.LoggerMsg.new_message(message=text).to_bytes_packed()  # type: ignore[attr-defined]
        return struct.pack(">I", len(payload)) + payload

    return frame


def syslog_frame(text: str) -> bytes:
    return f"<134>Nov 27 12:34:56 trd-host-01 app[1]: {text}\n".encode()
