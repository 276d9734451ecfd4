"""Shared fixtures: start the real server (see support.py) and stop what was started."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import RunningServer, start_server

SERVER_FIXTURES = {"server", "server_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the real server is slow: so marked, whether it asks for the
    fixtures or marks itself (tests that call start_server directly)."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(
        *args: str, log_dir: Path | None = None, stderr: int | None = None
    ) -> RunningServer:
        server = start_server(log_dir or tmp_path / "logs", *args, stderr=stderr)
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB file system (tmpfs) that fills up: writes on it really come out short
    and then fail with ENOSPC. Needs the right to mount (root, as in CI)."""
    mount_point = tmp_path / "tiny_disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip() or 'not root'}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
