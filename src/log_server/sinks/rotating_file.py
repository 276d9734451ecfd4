"""The rotating file set: `_main.log` (active), `_main.log.0` (newest) ... `.N-1` (oldest).

Rotation happens before a write would make the active file pass the size limit, and
only at line boundaries: a line is never split across two files. A single line longer
than the limit gets a file of its own.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from log_server.core.format import parse_sequence
from log_server.sinks.directory_watch import DirectoryWatch, open_watch
from log_server.sinks.log_directory import DirectoryLock, SymlinkRefused, open_directory

ACTIVE_NAME = "_main.log"
# Ends a line that a crash cut short, when the server starts again: the line keeps what was
# written of it, and the next line starts on a line of its own.
CUT_MARK = b" [cut short: log_server stopped while writing this line]"
_ROTATED_NAME = re.compile(re.escape(ACTIVE_NAME) + r"\.(0|[1-9][0-9]{0,17})")
_TAIL_READ_BYTES = 64 * 1024
# The most pieces one writev call takes (Linux: 1024).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16
# With a directory watch, the paths are still looked up at least this often: a rename of a
# parent directory moves the log directory without an event on it.
_FULL_CHECK_INTERVAL_S = 1.0


class SinkWriteError(Exception):
    """A write failed after `written` bytes of the data had reached the file."""

    def __init__(self, written: int, cause: OSError) -> None:
        super().__init__(f"{cause.strerror or cause} after {written} bytes")
        self.written = written
        self.cause = cause


class RotatingFileSink:
    def __init__(
        self,
        directory: Path,
        max_file_bytes: int,
        max_files: int,
        on_rotate: Callable[[Path], None] | None = None,
        lock: DirectoryLock | None = None,
    ) -> None:
        self.directory = directory
        self.path = directory / ACTIVE_NAME
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self._on_rotate = on_rotate
        self._lock = lock
        self._fd = -1
        self._identity: tuple[int, int] = (0, 0)
        # Every name is opened, renamed and checked relative to this descriptor of the
        # directory, opened without following a link: see log_directory.py.
        self._dir_fd = -1
        self._dir_identity: tuple[int, int] = (0, 0)
        self._watch: DirectoryWatch | None = None
        self._checked_at = 0.0
        self.size = 0
        # What a failed write left of an unfinished line in the file, and which file: a
        # retry resumes after it, or, if the file was replaced meanwhile, starts the line
        # again in the new one.
        self._partial = b""
        self._partial_identity: tuple[int, int] = (0, 0)
        self._reopen_requested = False
        self.rotations = 0

    def rotated_path(self, index: int) -> Path:
        return self.directory / f"{ACTIVE_NAME}.{index}"

    def open(self) -> None:
        """At start-up: open (or create) the active file for appending and count its size. A
        last line left unterminated by a crash is ended, so the next line starts on a line of
        its own."""
        self._open_directory()
        self._finish_interrupted_rotation()
        self._open_active()
        if self.size and self._last_byte() != b"\n":
            self._write_all(memoryview(CUT_MARK + b"\n"))

    def rotated_indices(self, below: int | None = None) -> list[int]:
        """The rotated files present, newest first: only names `_main.log.<n>` with n
        written as the server writes it (ASCII digits, no leading zero), below `below`
        (default --max_files). A stray `_main.log.99999999` or `_main.log.²` is not one
        of ours and is left alone."""
        limit = self.max_files if below is None else below
        return sorted(
            index
            for name in os.listdir(self._directory_fd())
            if (match := _ROTATED_NAME.fullmatch(name)) is not None
            and (index := int(match.group(1))) < limit
        )

    def _finish_interrupted_rotation(self) -> None:
        """A crash in the middle of a rotation leaves a hole in `.0`, `.1`, ... (the renames
        go from the oldest file down). Finish it: shift the files below the hole up by one
        and the active file to `.0`, as the rotation would have."""
        present = self.rotated_indices()
        hole = next((i for i, index in enumerate(present) if index != i), None)
        if hole is None:
            return
        for index in range(hole - 1, -1, -1):
            self._rename(_rotated_name(index), _rotated_name(index + 1))
        if self._lstat(ACTIVE_NAME) is not None:
            self._rename(ACTIVE_NAME, _rotated_name(0))

    def reopen(self) -> None:
        """Reopen by path: a file deleted or replaced under us is recreated rather than
        written into a descriptor nobody can read any more. A line a failed write left
        unfinished is continued where it stopped (no cut mark: the server did not stop), or
        begun again if the file it was in is gone."""
        self.close()
        self._open_directory()
        self._finish_interrupted_rotation()
        self._open_active()
        if self._partial and self._identity != self._partial_identity:
            head, self._partial = self._partial, b""
            self._write_all(memoryview(head))

    def request_reopen(self) -> None:
        """From any thread: reopen by name before the next write (SIGHUP)."""
        self._reopen_requested = True

    def _open_active(self) -> None:
        self._reopen_requested = False
        try:
            self._fd = os.open(
                ACTIVE_NAME,
                # O_NONBLOCK: a FIFO planted there fails (ENXIO) instead of blocking the
                # writer until someone reads it; on a regular file it changes nothing.
                os.O_WRONLY
                | os.O_APPEND
                | os.O_CREAT
                | os.O_NOFOLLOW
                | os.O_NONBLOCK
                | os.O_CLOEXEC,
                0o644,
                dir_fd=self._directory_fd(),
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SymlinkRefused(self.path) from None
            raise
        stat = os.fstat(self._fd)
        self.size = stat.st_size
        self._identity = (stat.st_dev, stat.st_ino)

    def _is_current(self) -> bool:
        """Whether the path still names the file we hold open: looked up when the directory
        watch saw a change (or there is none), and at least once a second."""
        if self._reopen_requested or self._dir_fd < 0 or self._fd < 0:
            return False
        watch = self._watch
        if watch is not None and not watch.changed():
            now = time.monotonic()
            if now - self._checked_at < _FULL_CHECK_INTERVAL_S:
                return True
            self._checked_at = now
        if not self._paths_name_open_file():
            self._reopen_requested = True  # until reopened: the watch has had its say
            return False
        return True

    def _paths_name_open_file(self) -> bool:
        try:
            directory = os.stat(self.directory, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if (directory.st_dev, directory.st_ino) != self._dir_identity:
            return False
        stat = self._lstat(ACTIVE_NAME)
        return stat is not None and (stat.st_dev, stat.st_ino) == self._identity

    def _open_directory(self) -> None:
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        self._dir_fd = open_directory(self.directory)
        stat = os.fstat(self._dir_fd)
        self._dir_identity = (stat.st_dev, stat.st_ino)
        if self._watch is not None:
            self._watch.close()
        self._watch = open_watch(self._dir_fd)
        self._checked_at = time.monotonic()
        if self._lock is not None:
            self._lock.follow(self._dir_fd)

    def _directory_fd(self) -> int:
        if self._dir_fd < 0:
            self._open_directory()
        return self._dir_fd

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self._directory_fd(), follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _rename(self, src: str, dst: str) -> None:
        """rename() never follows a link, at either name: a planted `_main.log.3` link is
        itself moved or replaced, never the file it points at."""
        fd = self._directory_fd()
        os.replace(src, dst, src_dir_fd=fd, dst_dir_fd=fd)

    def _open_for_reading(self, name: str, flags: int) -> int:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._directory_fd())

    def _last_byte(self) -> bytes:
        with open(ACTIVE_NAME, "rb", opener=self._open_for_reading) as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1)

    def write(self, data: bytes) -> None:
        """Write whole lines, rotating between them as needed. On failure raises
        SinkWriteError saying how much was written, so a retry neither loses nor repeats.

        If the active file was removed or replaced behind our back (an outside rotation,
        an operator's `rm`), it is reopened by path first: no line goes into a file that
        nobody can find any more."""
        view = memoryview(data)
        done = 0
        try:
            if not self._is_current():
                self.reopen()
            while done < len(data):
                room = self.max_file_bytes - self.size
                end = len(data)
                if end - done > room:
                    cut = data.rfind(b"\n", done, done + max(room, 0))
                    if cut < 0 and self.size > 0:
                        self._rotate()
                        continue
                    if cut < 0:
                        cut = data.find(b"\n", done)
                    end = cut + 1 if cut >= 0 else end
                while done < end:
                    done += self._write_all(view[done:end])
                if done < len(data):
                    self._rotate()
        except OSError as exc:
            raise SinkWriteError(done, exc) from exc

    def write_chunks(self, chunks: list[bytes]) -> None:
        """write() for lines that come in several pieces (each ends at a line end). When
        they fit in the active file, one writev puts them there without joining them first:
        under load that copy would be a megabyte per batch. Otherwise they are joined and
        go through write(), which rotates between lines."""
        size = sum(map(len, chunks))
        if (
            len(chunks) == 1
            or len(chunks) > _IOV_MAX
            or self.size + size > self.max_file_bytes
            or self._fd < 0
            or not self._is_current()
        ):
            self.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            return
        try:
            written = os.writev(self._fd, chunks)
        except OSError as exc:
            raise SinkWriteError(0, exc) from exc
        self.size += written
        if written == size:
            self._partial = b""
        else:
            self._note_written(chunks, written)
            try:
                self.write(b"".join(chunks)[written:])
            except SinkWriteError as exc:
                raise SinkWriteError(written + exc.written, exc.cause) from exc.cause

    def _write_all(self, view: memoryview) -> int:
        if self._fd < 0:
            raise OSError(f"{self.path} is not open")
        n = os.write(self._fd, view)
        self.size += n
        self._note_written(view, n)
        return n

    def _note_written(self, view: memoryview | list[bytes], n: int) -> None:
        """Keep what of an unfinished line is in the file (normally nothing: whole lines)."""
        if isinstance(view, memoryview):
            if n == len(view) and view[-1:].tobytes() == b"\n":
                self._partial = b""
                return
            data = view[:n].tobytes()
        else:
            data = b"".join(view)[:n]
        if not data:
            return
        cut = data.rfind(b"\n")
        self._partial = data[cut + 1 :] if cut >= 0 else self._partial + data
        self._partial_identity = self._identity

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.max_files == 0:
            os.unlink(ACTIVE_NAME, dir_fd=self._directory_fd())
        else:
            # Only the files present are moved: the cost follows them, not --max_files.
            for index in reversed(self.rotated_indices()):
                if index < self.max_files - 1:
                    self._rename(_rotated_name(index), _rotated_name(index + 1))
            self._rename(ACTIVE_NAME, _rotated_name(0))
        self._open_active()
        self.rotations += 1
        if self._on_rotate is not None:
            self._on_rotate(self.rotated_path(0))

    def fsync(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._dir_fd = -1
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def last_sequence(self) -> int:
        """The highest sequence number already used (0 for a new log), searched from the end
        of the active file back through `.0`, `.1`, ... (one may be missing after a crash or
        an operator's clean-up) until a line's number can be trusted."""
        if self._dir_fd < 0 and not self.directory.exists():
            return 0
        scan = _SequenceScan()
        # Every rotated file counts here, also those past a --max_files lowered since.
        present = self.rotated_indices(below=1 << 62)
        for name in (ACTIVE_NAME, *map(_rotated_name, present)):
            if scan.read(name, self._open_for_reading):
                break
        return scan.best or 0


def _rotated_name(index: int) -> str:
    return f"{ACTIVE_NAME}.{index}"


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def read_last_sequence(path: Path) -> int | None:
    """The highest sequence number used by the lines of one file, or None if it has none."""
    scan = _SequenceScan()
    scan.read(str(path), _no_follow)
    return scan.best


class _SequenceScan:
    """Reads lines backwards, newest file first, for the last number used.

    Nothing a client can write is trusted: a client cannot start a line (line ends are
    escaped), so every line's leading number is ours, but its text may end like CUT_MARK.
    Numbers have no gaps, so a line at distance k after a line numbered n used n + k at
    least; a line cut by a crash (unterminated, or ended with CUT_MARK at start-up) counts
    as used even when its own digits were cut ("12" of "1234"). The answer is the largest
    such bound; the scan stops at a whole line that is not marked as cut, whose number
    is exact. Overestimating can only leave a gap; it never issues a number twice."""

    def __init__(self) -> None:
        self.best: int | None = None
        self.after = 0  # cut lines seen after the current one: numbers used after it

    def read(self, name: str, opener: Callable[[str, int], int]) -> bool:
        """Scan one file; True once an exact number was found. A link is not followed
        (ELOOP): whatever it points at is not one of our files."""
        try:
            fh = open(name, "rb", opener=opener)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return False
            raise
        with fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return False
            fh.seek(size - 1)
            unterminated = fh.read(1) != b"\n"
            end = size if unterminated else size - 1
            last_line = True
            span = _TAIL_READ_BYTES
            while end > 0:
                start = max(0, end - span)
                fh.seek(start)
                lines = fh.read(end - start).split(b"\n")
                if start > 0:
                    if len(lines) == 1:  # no line end in the window: read a larger one
                        span *= 4
                        continue
                    end = start + len(lines.pop(0))  # may be cut at the front: read it next
                else:
                    end = 0
                for line in reversed(lines):
                    cut = line.endswith(CUT_MARK) or (last_line and unterminated)
                    last_line = False
                    seq = parse_sequence(line)
                    if seq is not None:
                        self.best = max(self.best or 0, seq + self.after)
                        if not cut:
                            return True
                    if cut:
                        self.after += 1
        return False
