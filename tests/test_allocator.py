"""The allocator tuning the server applies at start-up (log_server.allocator)."""

from __future__ import annotations

import platform

import pytest

from log_server.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_both_thresholds() -> None:
    assert keep_freed_memory() is True
