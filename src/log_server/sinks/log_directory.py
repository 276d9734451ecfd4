"""The log directory itself: opened without following a symbolic link, and claimed by one
server at a time with a lock file, so that two servers never share (and reuse) one
sequence or rename each other's files."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = ".log_server.lock"


class DirectoryInUse(OSError):
    """Another live process holds the directory's lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(errno.EBUSY, f"in use by another log_server (pid {holder})")
        self.holder = holder


def open_directory(path: Path) -> int:
    """A descriptor of `path` (created if missing), refusing a symbolic link there: files
    are then opened relative to it, so a directory swapped for a link is not followed."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
            raise SymlinkRefused(path) from None
        raise


class SymlinkRefused(OSError):
    """A path the server writes is a symbolic link: following it would let whoever made it
    point the server's writes at any file."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ELOOP, "is a symbolic link; refusing to follow it", str(path))


class DirectoryLock:
    """An exclusive flock on `<dir>/.log_server.lock`, which holds the owner's PID. The
    kernel drops the lock when the process dies (even by kill -9), so a stale file left
    behind never blocks a restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd = -1
        self._directory_identity = (0, 0)

    def acquire(self) -> None:
        """Before anything else in the directory is read or touched; raises DirectoryInUse."""
        dir_fd = open_directory(self.directory)
        try:
            self.follow(dir_fd)
        finally:
            os.close(dir_fd)

    def follow(self, dir_fd: int) -> None:
        """Hold the lock in the directory `dir_fd` names: a log directory removed and made
        again while running is claimed again, so a second server cannot start in it."""
        stat = os.fstat(dir_fd)
        identity = (stat.st_dev, stat.st_ino)
        if self._fd >= 0 and identity == self._directory_identity:
            return
        fd = os.open(
            LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DirectoryInUse(holder or "unknown") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.release()
        self._fd, self._directory_identity = fd, identity

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
