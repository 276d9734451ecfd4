import os
import sys
from pathlib import Path

import pytest

from log_server.sinks.directory_watch import open_watch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def test_a_change_is_seen_once_and_only_after_it_happened(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    watch = open_watch(fd)
    assert watch is not None
    try:
        assert not watch.changed()
        (tmp_path / "_main.log").write_bytes(b"x\n")
        assert watch.changed()
        assert not watch.changed()
        (tmp_path / "_main.log").write_bytes(b"more\n")  # writing into a file is no change
        assert not watch.changed()
        os.replace(tmp_path / "_main.log", tmp_path / "_main.log.0")
        assert watch.changed()
        (tmp_path / "_main.log.0").unlink()
        assert watch.changed()
    finally:
        watch.close()
        os.close(fd)


def test_the_watch_follows_the_directory_not_its_path(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    fd = os.open(logs, os.O_RDONLY | os.O_DIRECTORY)
    watch = open_watch(fd)
    assert watch is not None
    try:
        os.rename(logs, tmp_path / "old")
        assert watch.changed(), "the directory itself was moved"
        logs.mkdir()
        (logs / "_main.log").write_bytes(b"x\n")
        assert not watch.changed(), "a new directory at the old path is not the one watched"
    finally:
        watch.close()
        os.close(fd)
