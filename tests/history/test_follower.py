"""The follower against real files in a temporary directory, rotated by renames exactly as
RotatingFileSink does them (oldest first, then the active file to `.0`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from log_server.core.format import format_json, format_text, parse_sequence
from log_server.core.records import LogRecord
from log_server.history import LogFollower


def _line(seq: int, fmt: str = "text") -> bytes:
    record = LogRecord(message=f"message {seq}", logger_name="app", hostname="h")
    formatter = format_json if fmt == "json" else format_text
    return formatter(seq, record, "2026-12-07T12:00:00.000000+00:00").encode()


def _append(directory: Path, data: bytes) -> None:
    with open(directory / "_main.log", "ab") as fh:
        fh.write(data)


def _rotate(directory: Path, max_files: int = 10) -> None:
    """As RotatingFileSink._rotate: the renames go from the oldest file down."""
    oldest = directory / f"_main.log.{max_files - 1}"
    if oldest.exists():
        oldest.unlink()
    for index in range(max_files - 2, -1, -1):
        src = directory / f"_main.log.{index}"
        if src.exists():
            os.replace(src, directory / f"_main.log.{index + 1}")
    os.replace(directory / "_main.log", directory / "_main.log.0")


def _seqs(follower: LogFollower) -> list[int]:
    return [line.seq for line in follower.read_available()]


def test_reads_the_rotated_set_oldest_first(tmp_path: Path) -> None:
    seq = 0
    for _ in range(4):
        for _ in range(5):
            seq += 1
            _append(tmp_path, _line(seq))
        _rotate(tmp_path)
    _append(tmp_path, _line(21))
    with LogFollower(tmp_path) as follower:
        lines = follower.read_available()
        assert [line.seq for line in lines] == list(range(1, 22))
        assert lines[0].raw == _line(1)
        assert follower.gap is None
        assert follower.read_available() == []


def test_follows_across_rotations_without_missing_or_repeating(tmp_path: Path) -> None:
    got: list[int] = []
    with LogFollower(tmp_path) as follower:
        seq = 0
        for round_ in range(30):
            for _ in range(round_ % 4 + 1):
                seq += 1
                _append(tmp_path, _line(seq, "json" if seq % 3 else "text"))
            if round_ % 2:
                _rotate(tmp_path, max_files=3)
            if round_ % 3 == 0:
                got += _seqs(follower)
        got += _seqs(follower)
    assert got == list(range(1, seq + 1))


def test_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    whole = _line(1)
    _append(tmp_path, whole[:10])
    with LogFollower(tmp_path) as follower:
        assert follower.read_available() == []
        _append(tmp_path, whole[10:])
        assert [line.raw for line in follower.read_available()] == [whole]


def test_after_seq_and_max_lines(tmp_path: Path) -> None:
    for seq in range(1, 11):
        _append(tmp_path, _line(seq))
        if seq % 4 == 0:
            _rotate(tmp_path)
    with LogFollower(tmp_path, after_seq=3) as follower:
        assert _seqs_limited(follower, 2) == [4, 5]
        assert _seqs_limited(follower, 100) == [6, 7, 8, 9, 10]


def _seqs_limited(follower: LogFollower, n: int) -> list[int]:
    return [line.seq for line in follower.read_available(max_lines=n)]


def test_lines_rotated_away_are_reported_as_a_gap(tmp_path: Path) -> None:
    with LogFollower(tmp_path) as follower:
        _append(tmp_path, _line(1))
        assert _seqs(follower) == [1]
        for seq in range(2, 12):
            _append(tmp_path, _line(seq))
            _rotate(tmp_path, max_files=2)  # keeps .0 and .1 only
        _append(tmp_path, _line(12))
        # 2 went into the file still held open; 3..9 were deleted before they were read.
        assert _seqs(follower) == [2, 10, 11, 12]
        assert follower.gap == (3, 9)


def _block_seqs(follower: LogFollower) -> list[int]:
    text = b"".join(follower.read_blocks())
    return [seq for line in text.splitlines(keepends=True) if (seq := parse_sequence(line))]


# What the writer does, step by step: whole lines (text or JSON), a rotation, a line in two
# writes, and a jump in the numbers (as after lines were lost with a killed server).
HISTORY: list[tuple[str, range]] = [
    ("write", range(1, 2)),
    ("write", range(2, 32)),
    ("rotate", range(0)),
    ("write", range(32, 37)),
    ("write", range(137, 177)),
    ("half", range(177, 178)),
    ("rest", range(177, 178)),
    ("rotate", range(0)),
    ("json", range(178, 185)),
]


def _apply(directory: Path, step: str, seqs: range) -> None:
    if step == "rotate":
        _rotate(directory)
    elif step in ("half", "rest"):
        whole = _line(seqs[0])
        _append(directory, whole[:10] if step == "half" else whole[10:])
    else:
        fmt = "json" if step == "json" else "text"
        _append(directory, b"".join(_line(seq, fmt) for seq in seqs))


def test_blocks_hold_the_same_lines_as_read_available(tmp_path: Path) -> None:
    """The fast whole-block path and the line-by-line one agree, step by step."""
    by_lines, by_blocks = tmp_path / "lines", tmp_path / "blocks"
    by_lines.mkdir()
    by_blocks.mkdir()
    with LogFollower(by_lines, 2) as lines, LogFollower(by_blocks, 2) as blocks:
        for step, seqs in HISTORY:
            _apply(by_lines, step, seqs)
            _apply(by_blocks, step, seqs)
            assert _block_seqs(blocks) == _seqs(lines), step
            assert blocks.gap == lines.gap
    assert lines.last_seq == blocks.last_seq == 184
    assert blocks.gap == (37, 136)


def test_a_block_with_lines_already_read_is_sorted_out_line_by_line(tmp_path: Path) -> None:
    _append(tmp_path, b"".join(_line(seq) for seq in (1, 2, 3)))
    with LogFollower(tmp_path, after_seq=2) as follower:
        assert _block_seqs(follower) == [3]
        _append(tmp_path, b"".join(_line(seq) for seq in (2, 3, 4, 5)))
        assert _block_seqs(follower) == [4, 5]


def test_a_rotation_in_the_middle_of_the_listing_skips_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rotations while the follower finishes a file: the listing opens `_main.log.0`
    (the finished file, before the renames) and then `_main.log` (two files later). The file
    in between must still be read, not reported as a gap (the forwarder saw this at full
    intake: 45,990 lines reported lost that were on disk)."""
    for seq in (1, 2):
        _append(tmp_path, _line(seq))
    _rotate(tmp_path)
    _append(tmp_path, _line(3))
    got: list[int] = []
    with LogFollower(tmp_path) as follower:
        got += _seqs(follower)  # 1-3, and it waits in the active file (3)
        _append(tmp_path, _line(4))
        _rotate(tmp_path)  # 3-4 -> .0
        _append(tmp_path, _line(5))
        real_open = os.open
        rotated = False

        def open_then_rotate(path: os.PathLike[str] | str, flags: int, *args: int) -> int:
            nonlocal rotated
            fd = real_open(path, flags, *args)
            if not rotated and str(path).endswith("_main.log.0"):
                rotated = True  # between this name and the next: 5 -> .0, 3-4 -> .1
                _rotate(tmp_path)
                _append(tmp_path, _line(6))
            return fd

        monkeypatch.setattr(os, "open", open_then_rotate)
        got += _seqs(follower)
        monkeypatch.undo()
        assert follower.gap is None
    assert got == [1, 2, 3, 4, 5, 6]
