"""The server's configuration: one frozen dataclass, the single source of defaults.

Each field carries its command-line flags and help in its metadata, so `cli.py` builds
the parser from this class and no option is declared twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from log_server.forward.target import KafkaTarget, parse_forward_url

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# The 4 ASCII bytes "heal" (of the TCP health word) read as a big-endian length are
# 1,751,474,540; any frame limit below that keeps the health word from ever being
# mistaken for a frame header.
MAX_FRAME_LIMIT_BYTES = 1 * GIB
# A line has about 170 bytes of fixed columns before the message.
MIN_LINE_LIMIT_BYTES = 1 * KIB

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": KIB,
    "kb": KIB,
    "kib": KIB,
    "m": MIB,
    "mb": MIB,
    "mib": MIB,
    "g": GIB,
    "gb": GIB,
    "gib": GIB,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse `10MB`, `512KB`, `1.5MiB` or a plain byte count. Units are powers of 1024."""
    match = _SIZE_RE.match(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 10MB, 512KB or a byte count)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def format_size(n: int) -> str:
    for unit, factor in (("GB", GIB), ("MB", MIB), ("KB", KIB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _comma_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise ValueError(f"not a comma-separated list: {text!r}")
    return items


def _option(
    default: Any,
    flags: tuple[str, ...],
    help: str,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] = str,
    choices: tuple[str, ...] | None = None,
    repeat: bool = False,
) -> Any:
    return field(
        default=default,
        metadata={
            "flags": flags,
            "help": help,
            "parse": parse,
            "show": show,
            "choices": choices,
            "repeat": repeat,
        },
    )


@dataclass(frozen=True)
class Config:
    name: str = _option("LogServer", ("--name",), "server name; logger name of its own lines")
    host: str = _option("127.0.0.1", ("--host",), "bind address for both listeners")
    port: int = _option(4020, ("--port",), "TCP port (0 picks a free port)", int)
    grpc_port: int = _option(4021, ("--grpc_port",), "gRPC port (0 picks a free port)", int)
    unix_socket: Path | None = _option(
        None,
        ("--unix_socket",),
        "also serve the TCP protocol on this Unix socket, created with mode 0660",
        Path,
        lambda v: "off" if v is None else str(v),
    )
    grpc_web: bool = _option(
        True,
        ("--grpc_web",),
        "also serve gRPC-Web (browsers) on the gRPC port, in front of native gRPC; "
        "--no_grpc_web lets grpcio bind the port alone",
    )
    cors_origins: tuple[str, ...] = _option(
        ("http://localhost:*", "http://127.0.0.1:*"),
        ("--cors_origins",),
        "comma-separated Origins whose pages may call over gRPC-Web (`:*` any port, `*` any "
        "origin)",
        _comma_list,
        ",".join,
    )
    allowed_hosts: tuple[str, ...] = _option(
        ("localhost", "127.0.0.1", "[::1]"),
        ("--allowed_hosts",),
        "comma-separated names a gRPC-Web request's Host header may carry, any port "
        "(guards against DNS rebinding; `*` any)",
        _comma_list,
        ",".join,
    )
    metrics_port: int | None = _option(
        None,
        ("--metrics_port",),
        "serve Prometheus metrics at http://HOST:PORT/metrics on --host (0 picks a free port)",
        int,
        lambda v: "off" if v is None else str(v),
    )
    tcp_only: bool = _option(False, ("--tcp_only", "--only_tcp"), "do not start gRPC")
    log_dir: Path = _option(
        Path("logs"), ("--log_dir",), "where _main.log and its rotations live", Path
    )
    max_file_bytes: int = _option(
        10 * MIB,
        ("--max_file_size",),
        "rotate before the active file would pass this size",
        parse_size,
        format_size,
    )
    max_files: int = _option(
        10, ("--max_files",), "rotated files kept: _main.log.0 (newest) ... .N-1 (oldest)", int
    )
    format: str = _option("text", ("--format",), "line format", choices=("text", "json"))
    max_frame_bytes: int = _option(
        10 * MIB,
        ("--max_frame_size",),
        "largest TCP frame accepted (the original project's server accepts 10MB too)",
        parse_size,
        format_size,
    )
    max_line_bytes: int = _option(
        16 * MIB,
        ("--max_line_size",),
        "longest line one TCP message may become (control characters are written "
        "escaped, 4 bytes each); a message past it closes its connection",
        parse_size,
        format_size,
    )
    max_connections: int = _option(
        1024,
        ("--max_connections",),
        "connections open at once on each listener (TCP, gRPC); more are refused",
        int,
    )
    read_timeout_s: float = _option(
        30.0,
        ("--read_timeout",),
        "seconds a TCP connection may stall in the middle of a frame before it is closed "
        "(0 = never; idle between frames is always fine)",
        float,
        lambda v: f"{v:g}",
    )
    grpc_max_batch: int = _option(
        10_000,
        ("--grpc_max_batch",),
        "messages in one gRPC LogBatch request; a larger batch is refused (INVALID_ARGUMENT)",
        int,
    )
    grpc_max_request_bytes: int = _option(
        4 * MIB,
        ("--grpc_max_request_size",),
        "largest gRPC request accepted (gRPC's own default); a larger one gets RESOURCE_EXHAUSTED",
        parse_size,
        format_size,
    )
    grpc_max_calls: int = _option(
        1024,
        ("--grpc_max_calls",),
        "gRPC calls in progress at once (all connections); more get RESOURCE_EXHAUSTED",
        int,
    )
    max_queue_bytes: int = _option(
        64 * MIB,
        ("--max_queue_bytes",),
        "accepted but unwritten lines held in memory before intake pauses",
        parse_size,
        format_size,
    )
    decoder: str = _option(
        "auto",
        ("--decoder", "--kernel"),
        "TCP decoder: the compiled one (native), pycapnp (python), or native when installed "
        "(--kernel is its former name)",
        choices=("auto", "native", "python"),
    )
    fsync: str = _option(
        "never",
        ("--fsync",),
        "when written lines are forced to disk: never (the OS decides), batch (after every "
        "write), interval (every --fsync_interval); acknowledgements follow it",
        choices=("never", "batch", "interval"),
    )
    fsync_interval_s: float = _option(
        1.0,
        ("--fsync_interval",),
        "seconds between fsyncs with --fsync interval",
        float,
        lambda v: f"{v:g}",
    )
    forward: tuple[KafkaTarget, ...] = _option(
        (),
        ("--forward",),
        "also ship every written line to kafka://HOST:PORT/TOPIC[?acks=all|1&compression="
        "none|gzip|snappy|lz4|zstd&key=host|server], from a checkpoint in --log_dir "
        "(repeatable)",
        parse_forward_url,
        lambda v: " ".join(t.url for t in v) or "off",
        repeat=True,
    )
    stats_interval_s: float = _option(
        60.0,
        ("--stats_interval",),
        "seconds between throughput lines (0 = off)",
        float,
        lambda v: f"{v:g}",
    )

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            flag, message = problems[0]
            raise ConfigError(flag, message)

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        ports = [("--port", self.port), ("--grpc_port", self.grpc_port)]
        if self.metrics_port is not None:
            ports.append(("--metrics_port", self.metrics_port))
        for flag, port in ports:
            if not 0 <= port <= 65535:
                out.append((flag, f"{port} is not a port number (0-65535)"))
        if self.max_file_bytes < 1:
            out.append(("--max_file_size", "must be at least 1 byte"))
        if self.max_files < 0:
            out.append(("--max_files", "must be 0 or more"))
        if not 1 <= self.max_frame_bytes <= MAX_FRAME_LIMIT_BYTES:
            out.append(("--max_frame_size", f"must be between 1 byte and {format_size(GIB)}"))
        if self.max_line_bytes < MIN_LINE_LIMIT_BYTES:
            out.append(("--max_line_size", f"must be at least {format_size(MIN_LINE_LIMIT_BYTES)}"))
        if self.max_queue_bytes < 1:
            out.append(("--max_queue_bytes", "must be at least 1 byte"))
        if self.grpc_max_batch < 1:
            out.append(("--grpc_max_batch", "must be at least 1"))
        if not 1 <= self.grpc_max_request_bytes <= 2 * GIB - 1:
            out.append(("--grpc_max_request_size", "must be between 1 byte and 2GB - 1"))
        if self.grpc_max_calls < 1:
            out.append(("--grpc_max_calls", "must be at least 1"))
        if self.max_connections < 1:
            out.append(("--max_connections", "must be at least 1"))
        if self.read_timeout_s < 0:
            out.append(("--read_timeout", "must be 0 (never) or more seconds"))
        if self.fsync_interval_s <= 0:
            out.append(("--fsync_interval", "must be more than 0 seconds"))
        if self.stats_interval_s < 0:
            out.append(("--stats_interval", "must be 0 (off) or more seconds"))
        if len({t.checkpoint_name for t in self.forward}) < len(self.forward):
            out.append(("--forward", "the same brokers and topic are given twice"))
        if not self.name.strip() or any(c.isspace() for c in self.name):
            out.append(("--name", "must be one word without spaces"))
        return out

    @property
    def active_log(self) -> Path:
        return self.log_dir / "_main.log"


class ConfigError(ValueError):
    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"argument {flag}: {message}")
        self.flag = flag
