"""Command line: flags to Config, one-line errors with exit code 2, startup failures."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from log_server import __version__
from log_server.cli import config_from_args
from log_server.config import MIB, Config, parse_size


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "log_server", *args], capture_output=True, text=True, timeout=timeout
    )


def test_defaults_match_the_documented_ones() -> None:
    config = config_from_args([])
    assert config == Config()
    assert (config.name, config.host, config.port, config.grpc_port) == (
        "LogServer",
        "127.0.0.1",
        4020,
        4021,
    )
    assert (config.max_file_bytes, config.max_files, config.format) == (10 * MIB, 10, "text")
    assert (config.max_frame_bytes, config.stats_interval_s, config.tcp_only) == (
        10 * MIB,
        60.0,
        False,
    )
    assert config.log_dir == Path("logs")
    assert config.metrics_port is None


def test_underscore_and_dashed_spellings_and_aliases() -> None:
    a = config_from_args(["--max_file_size", "512KB", "--grpc_port", "5000", "--only_tcp"])
    b = config_from_args(["--max-file-size", "524288", "--grpc-port", "5000", "--tcp-only"])
    assert a == b
    assert a.max_file_bytes == 512 * 1024 and a.tcp_only


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MB", 10 * MIB),
        ("512KB", 512 * 1024),
        ("1234", 1234),
        ("1.5mib", int(1.5 * MIB)),
        ("2 GB", 2 << 30),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--port", "99999"], "--port"),
        (["--port", "http"], "--port"),
        (["--max_file_size", "10 parsecs"], "--max_file_size"),
        (["--max_frame_size", "2GB"], "--max_frame_size"),
        (["--format", "xml"], "--format"),
        (["--max_files", "-1"], "--max_files"),
        (["--stats_interval", "-5"], "--stats_interval"),
        (["--metrics_port", "70000"], "--metrics_port"),
        (["--no_such_flag"], "--no_such_flag"),
    ],
)
def test_bad_values_get_one_line_naming_the_flag_and_exit_2(args: list[str], flag: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0] and lines[0].startswith("log_server: error:")


def test_help_lists_every_flag_with_its_default() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag, default in [
        ("--name", "LogServer"),
        ("--host", "127.0.0.1"),
        ("--port", "4020"),
        ("--grpc_port", "4021"),
        ("--log_dir", "logs"),
        ("--max_file_size", "10MB"),
        ("--max_files", "10"),
        ("--format", "text"),
        ("--max_frame_size", "10MB"),
        ("--stats_interval", "60"),
        ("--metrics_port", "off"),
    ]:
        assert f"{flag} " in text
        assert f"(default: {default})" in text
    assert "--tcp_only" in text and "--only_tcp" in text


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"log_server {__version__}"


def test_port_in_use_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--log_dir", str(tmp_path), "--port", str(port), "--tcp_only")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"log_server: error: cannot listen on TCP 127.0.0.1:{port}: Address already in use"
    ]


def test_grpc_port_in_use_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--log_dir", str(tmp_path), "--port", "0", "--grpc_port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on gRPC 127.0.0.1:{port}" in lines[0]


def test_unwritable_log_dir_is_one_line_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli("--log_dir", str(blocker / "logs"), "--port", "0", "--tcp_only")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot write to log directory {blocker / 'logs'}" in lines[0]
