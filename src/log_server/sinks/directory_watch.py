"""Whether anything was created, removed or renamed in the log directory since the last look,
for one read() instead of two path lookups per batch.

The sink must notice when its active file is removed or replaced behind its back (an
outside rotation, an operator's `rm`) before it writes the next line, so it used to stat the
directory and the file before every batch: at low load, where every line is a batch, those
two stats were a tenth of a line's way to the disk. With inotify(7) the kernel queues an
event in the same system call as the rename or unlink, so looking at the (normally empty)
queue before a write sees every change that finished before it, just as the stats did; the
sink only stats when the queue was not empty. Linux only, through libc's three inotify
calls (ctypes: the standard library has no binding, and a dependency for three calls is not
worth it); elsewhere `open_watch` returns None and the sink stats every batch as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sys

_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = (
    _IN_CREATE
    | _IN_DELETE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
)
_READ_BYTES = 64 * 1024


class DirectoryWatch:
    """An inotify descriptor watching one directory for changes of its entries or itself."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        # Asked with a zero timeout rather than read until EAGAIN: the exception, with its
        # strerror text, was most of what a look at an empty queue cost.
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def changed(self) -> bool:
        """Whether any event came since the last call (an overflowed queue counts too)."""
        seen = False
        while self._poll.poll(0):
            if not os.read(self._fd, _READ_BYTES):
                break
            seen = True
        return seen

    def close(self) -> None:
        if self._fd >= 0:
            self._poll.unregister(self._fd)
            os.close(self._fd)
            self._fd = -1


def open_watch(dir_fd: int) -> DirectoryWatch | None:
    """A watch on the directory open as `dir_fd` (through /proc/self/fd, so it is that
    directory even if its path now names another), or None where inotify is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    path = f"/proc/self/fd/{dir_fd}".encode()
    if libc.inotify_add_watch(fd, path, _MASK) < 0:
        os.close(fd)
        return None
    return DirectoryWatch(fd)
