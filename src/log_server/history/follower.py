"""Follow the rotating file set by inode and sequence number (what `tail -F` cannot promise).

The writer rotates only between whole lines and never writes to a file after renaming it
(rotating_file.py), so a file that is no longer `_main.log` is final: it is read to its end
through the descriptor we hold, then the next file is chosen by sequence number, not by name,
so renames racing with the reader can neither skip nor repeat a line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from log_server.core.format import parse_sequence

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    raw: bytes  # the line as in the file, with its newline


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_dev, stat.st_ino)


class _OpenFile:
    """One file of the set, held by descriptor so a rename does not lose it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.identity = _identity(os.fstat(fd))
        self.pending = b""  # an unfinished last line, kept until its newline arrives

    def read_whole_lines(self) -> tuple[bytes, int] | None:
        """The next chunk after the held unfinished line, and where its whole lines end
        (the rest is held); None at the end of the file."""
        chunk = os.read(self.fd, _CHUNK_BYTES)
        if not chunk:
            return None
        data = self.pending + chunk if self.pending else chunk
        end = data.rfind(b"\n") + 1
        self.pending = data[end:]
        return data, end

    def close(self) -> None:
        os.close(self.fd)


# How often the directory is listed before the follower believes that lines were rotated
# away unread (the first listing may have been torn by a rotation).
LISTINGS_BEFORE_A_GAP = 3


class LogFollower:
    """Lines after `after_seq` in sequence order, across rotations, following by inode and
    sequence number."""

    def __init__(self, log_dir: Path, after_seq: int = 0, base_name: str = "_main.log") -> None:
        self.log_dir = log_dir
        self.base_name = base_name
        self.last_seq = after_seq
        self._rotated = re.compile(re.escape(base_name) + r"\.(0|[1-9][0-9]{0,17})")
        self._file: _OpenFile | None = None
        self._finished: tuple[int, int] | None = None  # a final file read to its end
        self._gap: tuple[int, int] | None = None

    @property
    def gap(self) -> tuple[int, int] | None:
        """The last range of sequence numbers that was rotated away before it could be read."""
        return self._gap

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_available(self, max_lines: int = 10_000) -> list[LogLine]:
        """Whole lines written since the last call (at most `max_lines`); never blocks."""
        out: list[LogLine] = []
        self._read(lambda f: self._read_into(f, out, max_lines), lambda: len(out) >= max_lines)
        return out

    def read_blocks(self, max_bytes: int = 16 * _CHUNK_BYTES) -> list[bytes]:
        """The same lines as `read_available`, as blocks of whole lines (about `max_bytes` in
        all, so memory does not grow with the history): a scan looks for what it wants in a
        block with one search instead of a Python step per line."""
        out: list[bytes] = []
        self._read(lambda f: self._read_block(f, out), lambda: sum(map(len, out)) >= max_bytes)
        return out

    def _read(self, read_more: Callable[[_OpenFile], bool], full: Callable[[], bool]) -> None:
        """Read on through the rotations until `full()` or the active file's end."""
        while not full():
            if self._file is None and not self._open_next():
                break
            assert self._file is not None
            if read_more(self._file):
                continue  # stopped because full, or read something: go on
            # At the end of the file: if it is still the active one, wait for more.
            if self._is_active(self._file):
                break
            # Rotated away, hence final: read what was written before the rename, then move on.
            if read_more(self._file):
                continue
            self._finished = self._file.identity
            self._file.close()
            self._file = None

    def _read_block(self, f: _OpenFile, out: list[bytes]) -> bool:
        """Append the file's next whole lines after `last_seq` as one block; False at its end
        with nothing new. The writer writes a file in sequence order, so a block that starts
        after `last_seq` and ends after its start is taken whole, unread (counting its lines
        would cost as much as the scan it feeds); any other is sorted out line by line."""
        whole = f.read_whole_lines()
        if whole is None:
            return False
        data, end = whole
        if not end:
            return True
        first = parse_sequence(data[: data.index(b"\n") + 1])
        last = parse_sequence(data[data.rfind(b"\n", 0, end - 1) + 1 : end])
        if first is not None and last is not None and self.last_seq < first <= last:
            if first > self.last_seq + 1:
                self._gap = (self.last_seq + 1, first - 1)
            self.last_seq = last
            out.append(data[:end])
            return True
        kept = [line.raw for line, _ in self._after_last(data, end)]
        if kept:
            out.append(b"".join(kept))
        return True

    def _read_into(self, f: _OpenFile, out: list[LogLine], max_lines: int) -> bool:
        """Append the file's next whole lines; False at its end with nothing new."""
        whole = f.read_whole_lines()
        if whole is None:
            return False
        data, end = whole
        for line, stop in self._after_last(data, end):
            out.append(line)
            if len(out) >= max_lines:
                # Give the unread rest back: the next call reads it again from the file.
                os.lseek(f.fd, stop - len(data), os.SEEK_CUR)
                f.pending = b""
                break
        return True

    def _after_last(self, data: bytes, end: int) -> Iterator[tuple[LogLine, int]]:
        """The lines of `data[:end]` after `last_seq`, each with the offset where it ends,
        advancing `last_seq` (and noting a gap) as each is taken."""
        start = 0
        while start < end:
            stop = data.index(b"\n", start) + 1
            raw = data[start:stop]
            start = stop
            seq = parse_sequence(raw)
            if seq is None or seq <= self.last_seq:
                continue
            if seq > self.last_seq + 1:
                self._gap = (self.last_seq + 1, seq - 1)
            self.last_seq = seq
            yield LogLine(seq, raw), stop

    def _is_active(self, f: _OpenFile) -> bool:
        try:
            stat = os.stat(self.log_dir / self.base_name, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return _identity(stat) == f.identity

    def _names_oldest_first(self) -> list[str]:
        try:
            names = os.listdir(self.log_dir)
        except FileNotFoundError:
            return []
        indices = sorted(
            (int(m.group(1)) for n in names if (m := self._rotated.fullmatch(n))), reverse=True
        )
        ordered = [f"{self.base_name}.{i}" for i in indices]
        if self.base_name in names:
            ordered.append(self.base_name)
        return ordered

    def _open_next(self) -> bool:
        """Open the file holding `last_seq + 1`: the newest one whose first line is not after
        it (or, when that is the file just finished, the one after; when lines were rotated
        away, the oldest one left). A choice that would skip lines is made only after the
        directory was listed again: a rotation between opening one name and the next can
        make the listing miss the file in between (the writer rotates every few
        milliseconds at full load)."""
        for listings_left in range(LISTINGS_BEFORE_A_GAP - 1, -1, -1):
            candidates = self._candidates()
            chosen = self._choose(candidates)
            first = None if chosen is None else candidates[chosen][0]
            again = listings_left > 0 and first is not None and first > self.last_seq + 1
            for i, (_, f) in enumerate(candidates):
                if again or i != chosen:
                    f.close()
            if again:
                continue
            if chosen is None:
                return False
            self._file = candidates[chosen][1]
            os.lseek(self._file.fd, 0, os.SEEK_SET)
            return True
        raise AssertionError("the last listing always decides")

    def _candidates(self) -> list[tuple[int | None, _OpenFile]]:
        """(first sequence number, open file) of each file of the set, oldest first."""
        candidates: list[tuple[int | None, _OpenFile]] = []
        for name in self._names_oldest_first():
            try:
                fd = os.open(self.log_dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # renamed or removed meanwhile: the listing is only a hint
            f = _OpenFile(fd)
            if any(f.identity == c.identity for _, c in candidates):
                f.close()  # seen twice through a rename during the listing
                continue
            candidates.append((_first_sequence(fd), f))
        return candidates

    def _choose(self, candidates: list[tuple[int | None, _OpenFile]]) -> int | None:
        chosen: int | None = None
        for i, (first, _) in enumerate(candidates):
            if first is not None and first <= self.last_seq + 1:
                chosen = i
        if chosen is not None and candidates[chosen][1].identity == self._finished:
            chosen = chosen + 1 if chosen + 1 < len(candidates) else None
        elif chosen is None:
            chosen = next(
                (i for i, (first, _) in enumerate(candidates) if first is not None),
                None,
            )
            if chosen is None and candidates:
                chosen = len(candidates) - 1  # all empty: wait in the newest
            if chosen is not None and candidates[chosen][1].identity == self._finished:
                chosen = None
        return chosen


def _first_sequence(fd: int) -> int | None:
    head = os.pread(fd, 4096, 0)
    newline = head.find(b"\n")
    return parse_sequence(head[: newline + 1]) if newline >= 0 else None
