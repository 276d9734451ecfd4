"""RotatingFileSink on real files: rotation order, limits, whole lines, last sequence."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import fill_disk

from log_server.sinks.log_directory import SymlinkRefused
from log_server.sinks.rotating_file import (
    CUT_MARK,
    RotatingFileSink,
    SinkWriteError,
    read_last_sequence,
)


def numbered(first: int, count: int, width: int = 20) -> bytes:
    return b"".join(f"{i:>{width - 1}}\n".encode() for i in range(first, first + count))


def files_oldest_first(directory: Path, max_files: int) -> list[Path]:
    rotated = [directory / f"_main.log.{i}" for i in range(max_files - 1, -1, -1)]
    return [p for p in rotated if p.exists()] + [directory / "_main.log"]


def test_rotates_before_passing_the_limit_newest_in_dot_zero(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=100, max_files=3)
    sink.open()
    sink.write(numbered(1, 5))  # 100 bytes: exactly full
    assert not (tmp_path / "_main.log.0").exists()
    sink.write(numbered(6, 1))
    assert (tmp_path / "_main.log.0").read_bytes() == numbered(1, 5)
    assert (tmp_path / "_main.log").read_bytes() == numbered(6, 1)


def test_keeps_only_max_files_rotations(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=40, max_files=3)
    sink.open()
    for first in range(1, 20, 2):
        sink.write(numbered(first, 2))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["_main.log", "_main.log.0", "_main.log.1", "_main.log.2"]
    assert (tmp_path / "_main.log").read_bytes() == numbered(19, 2)
    assert (tmp_path / "_main.log.0").read_bytes() == numbered(17, 2)
    assert (tmp_path / "_main.log.2").read_bytes() == numbered(13, 2)


def test_a_batch_larger_than_a_file_is_split_at_line_boundaries(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=50, max_files=10)
    sink.open()
    sink.write(numbered(1, 10))
    files = files_oldest_first(tmp_path, 10)
    assert b"".join(p.read_bytes() for p in files) == numbered(1, 10)
    for path in files:
        data = path.read_bytes()
        assert len(data) <= 50 and data.endswith(b"\n")


def test_a_line_longer_than_the_limit_gets_a_file_of_its_own(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=10, max_files=5)
    sink.open()
    sink.write(b"short\n" + b"x" * 30 + b"\n" + b"tail\n")
    contents = [p.read_bytes() for p in files_oldest_first(tmp_path, 5)]
    assert contents == [b"short\n", b"x" * 30 + b"\n", b"tail\n"]


def test_zero_max_files_keeps_no_rotations(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=20, max_files=0)
    sink.open()
    sink.write(numbered(1, 3))
    assert [p.name for p in tmp_path.iterdir()] == ["_main.log"]
    assert (tmp_path / "_main.log").read_bytes() == numbered(3, 1)


def test_appends_to_an_existing_file_and_counts_its_size(tmp_path: Path) -> None:
    (tmp_path / "_main.log").write_bytes(numbered(1, 4))
    sink = RotatingFileSink(tmp_path, max_file_bytes=100, max_files=2)
    sink.open()
    assert sink.size == 80
    sink.write(numbered(5, 2))
    assert (tmp_path / "_main.log.0").read_bytes() == numbered(1, 5)
    assert (tmp_path / "_main.log").read_bytes() == numbered(6, 1)


def test_an_unterminated_last_line_is_marked_on_open(tmp_path: Path) -> None:
    (tmp_path / "_main.log").write_bytes(b"         1 complete\n         2 cut sho")
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    sink.open()
    sink.write(b"         3 next\n")
    assert (tmp_path / "_main.log").read_bytes().splitlines() == [
        b"         1 complete",
        b"         2 cut sho" + CUT_MARK,
        b"         3 next",
    ]


def test_a_cut_last_line_counts_as_a_used_number(tmp_path: Path) -> None:
    """Regression: the digits of a cut line may themselves be cut ("12" of "1234"); its
    number is the one after the last complete line, which must not be issued again."""
    path = tmp_path / "_main.log"
    path.write_bytes(b"      1233 complete\n      12")
    assert read_last_sequence(path) == 1234
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    sink.open()  # marks the cut line
    sink.close()
    assert read_last_sequence(path) == 1234


def test_last_sequence_reads_active_then_dot_zero(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    assert sink.last_sequence() == 0
    (tmp_path / "_main.log.0").write_bytes(numbered(1, 7))
    (tmp_path / "_main.log").write_bytes(b"")
    assert sink.last_sequence() == 7
    (tmp_path / "_main.log").write_bytes(numbered(8, 2) + b"        1")  # cut last line
    assert sink.last_sequence() == 10


def test_open_finishes_a_rotation_a_crash_interrupted(tmp_path: Path) -> None:
    """Regression (found by tests/test_crash.py): killed after `.1` moved to `.2` but
    before `.0` moved to `.1` and the active file to `.0`."""
    (tmp_path / "_main.log.3").write_bytes(numbered(1, 1))
    (tmp_path / "_main.log.2").write_bytes(numbered(2, 1))
    (tmp_path / "_main.log.0").write_bytes(numbered(3, 1))
    (tmp_path / "_main.log").write_bytes(numbered(4, 1))
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=5)
    sink.open()
    sink.write(numbered(5, 1))
    assert [p.read_bytes() for p in files_oldest_first(tmp_path, 5)] == [
        numbered(i, 1) for i in range(1, 6)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "_main.log",
        "_main.log.0",
        "_main.log.1",
        "_main.log.2",
        "_main.log.3",
    ]


def test_open_leaves_a_complete_set_alone(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"_main.log.{i}").write_bytes(numbered(10 - i, 1))
    (tmp_path / "_main.log").write_bytes(numbered(11, 1))
    RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=5).open()
    assert (tmp_path / "_main.log").read_bytes() == numbered(11, 1)
    assert (tmp_path / "_main.log.0").read_bytes() == numbered(10, 1)


def test_last_sequence_after_a_crash_in_the_middle_of_a_rotation(tmp_path: Path) -> None:
    """Regression: `.0` was already shifted to `.1` and the active file not yet renamed
    and recreated; the sequence must not start again from 1."""
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=3)
    (tmp_path / "_main.log.1").write_bytes(numbered(1, 5))
    assert sink.last_sequence() == 5


def test_last_sequence_finds_a_line_behind_a_long_one(tmp_path: Path) -> None:
    path = tmp_path / "_main.log"
    path.write_bytes(b"        41 short\n        42 " + b"m" * 300_000 + b"\n")
    assert read_last_sequence(path) == 42


def test_last_sequence_skips_lines_that_are_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "_main.log"
    path.write_bytes(b'{"seq":5,"x":1}\nsomething else\n')
    assert read_last_sequence(path) == 5


def test_reopen_recreates_a_deleted_active_file(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    sink.open()
    sink.write(numbered(1, 1))
    (tmp_path / "_main.log").unlink()
    sink.reopen()
    sink.write(numbered(2, 1))
    assert (tmp_path / "_main.log").read_bytes() == numbered(2, 1)


def test_a_file_replaced_behind_our_back_is_reopened_before_the_next_write(
    tmp_path: Path,
) -> None:
    """Regression: writes must not go on into a descriptor whose file was renamed away
    (an outside logrotate) or deleted, where nobody would find them."""
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    sink.open()
    sink.write(numbered(1, 1))
    os.replace(tmp_path / "_main.log", tmp_path / "rotated-by-someone-else")
    sink.write(numbered(2, 1))
    assert (tmp_path / "_main.log").read_bytes() == numbered(2, 1)
    (tmp_path / "_main.log").unlink()
    sink.write(numbered(3, 1))
    assert (tmp_path / "_main.log").read_bytes() == numbered(3, 1)
    assert (tmp_path / "rotated-by-someone-else").read_bytes() == numbered(1, 1)


def test_write_chunks_writes_the_pieces_in_order_in_one_file(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=10_000, max_files=2)
    sink.open()
    sink.write_chunks([numbered(1, 2), numbered(3, 1), numbered(4, 3)])
    assert (tmp_path / "_main.log").read_bytes() == numbered(1, 6)
    assert sink.size == 6 * 20 and not (tmp_path / "_main.log.0").exists()


def test_write_chunks_with_more_pieces_than_one_writev_takes(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=1 << 20, max_files=2)
    sink.open()
    sink.write_chunks([numbered(i, 1) for i in range(1, 3001)])
    assert (tmp_path / "_main.log").read_bytes() == numbered(1, 3000)


def test_write_chunks_rotates_between_lines_when_the_pieces_do_not_fit(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=100, max_files=3)
    sink.open()
    sink.write_chunks([numbered(1, 3), numbered(4, 3)])
    assert (tmp_path / "_main.log.0").read_bytes() == numbered(1, 5)
    assert (tmp_path / "_main.log").read_bytes() == numbered(6, 1)


def test_write_chunks_reopens_a_file_replaced_behind_our_back(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    sink.open()
    sink.write_chunks([numbered(1, 1), numbered(2, 1)])
    os.replace(tmp_path / "_main.log", tmp_path / "moved")
    sink.write_chunks([numbered(3, 1), numbered(4, 1)])
    assert (tmp_path / "_main.log").read_bytes() == numbered(3, 2)
    assert (tmp_path / "moved").read_bytes() == numbered(1, 2)


@settings(max_examples=60, deadline=None)
@given(
    max_file_bytes=st.integers(15, 200),
    max_files=st.integers(0, 4),
    batches=st.lists(st.lists(st.integers(1, 60), min_size=1, max_size=8), max_size=12),
    in_pieces=st.booleans(),
)
def test_model_every_kept_line_in_order_files_within_limit(
    tmp_path_factory: pytest.TempPathFactory,
    max_file_bytes: int,
    max_files: int,
    batches: list[list[int]],
    in_pieces: bool,
) -> None:
    """Against a model: the kept files hold a contiguous, ordered tail of all lines written,
    and a file passes the limit only when it holds one line; whether a batch comes as one
    buffer or as a line per piece (write_chunks)."""
    directory = tmp_path_factory.mktemp("model")
    sink = RotatingFileSink(directory, max_file_bytes, max_files)
    sink.open()
    written: list[bytes] = []
    seq = 0
    for batch in batches:
        lines = []
        for length in batch:
            seq += 1
            lines.append(f"{seq} ".encode() + b"x" * length + b"\n")
        if in_pieces:
            sink.write_chunks(lines)
        else:
            sink.write(b"".join(lines))
        written.extend(lines)
    files = files_oldest_first(directory, max(max_files, 1))
    assert len(files) <= max_files + 1
    kept = [line + b"\n" for p in files for line in p.read_bytes().splitlines()]
    assert kept == written[len(written) - len(kept) :]
    for path in files:
        data = path.read_bytes()
        assert len(data) <= max_file_bytes or data.count(b"\n") == 1


def test_a_cut_line_alone_in_the_active_file_counts_as_used(tmp_path: Path) -> None:
    """Regression (issue 14, item 5): `_main.log` holding only a line cut within its number
    made the scan fall back to `.0`, and the cut line's number was issued again."""
    (tmp_path / "_main.log.0").write_bytes(numbered(1, 7))
    (tmp_path / "_main.log").write_bytes(b'{"se' + CUT_MARK + b"\n")
    assert RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2).last_sequence() == 8
    (tmp_path / "_main.log").write_bytes(b'{"se')  # not yet marked: the crash just happened
    assert RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2).last_sequence() == 8


def test_a_message_that_ends_like_the_cut_mark_does_not_hide_its_number(tmp_path: Path) -> None:
    """Regression (issue 14, item 5): a client may end its message with the cut-mark text;
    its line was taken for a cut one and, alone in `_main.log`, its number was reused."""
    (tmp_path / "_main.log.0").write_bytes(numbered(1, 7))
    (tmp_path / "_main.log").write_bytes(b"         8 forged" + CUT_MARK + b"\n")
    assert RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2).last_sequence() == 8
    (tmp_path / "_main.log").write_bytes(
        numbered(8, 1) + b"         9 forged" + CUT_MARK + b"\n" + b"        1"
    )
    assert read_last_sequence(tmp_path / "_main.log") == 10


def test_a_short_write_on_a_full_disk_is_resumed_without_splitting_a_line(
    tiny_disk: Path,
) -> None:
    """Regression (issue 14, item 2): a nearly full disk took part of a batch; the retry
    reopened the file and put the crash mark into the middle of a line."""
    sink = RotatingFileSink(tiny_disk, max_file_bytes=1 << 20, max_files=2)
    sink.open()
    sink.write(numbered(1, 1))  # the file now owns one page with room for ~200 more lines
    filler = fill_disk(tiny_disk)
    batch = numbered(2, 300)
    with pytest.raises(SinkWriteError) as failure:
        sink.write(batch)
    written = failure.value.written
    assert 0 < written < len(batch) and written % 20, "the disk must cut a line in two"
    filler.unlink()
    sink.reopen()
    sink.write(batch[written:])
    assert (tiny_disk / "_main.log").read_bytes() == numbered(1, 301)


def test_a_line_cut_by_a_failed_write_starts_again_if_the_file_was_replaced(
    tiny_disk: Path,
) -> None:
    sink = RotatingFileSink(tiny_disk, max_file_bytes=1 << 20, max_files=2)
    sink.open()
    sink.write(numbered(1, 1))
    filler = fill_disk(tiny_disk)
    batch = numbered(2, 300)
    with pytest.raises(SinkWriteError) as failure:
        sink.write(batch)
    written = failure.value.written
    filler.unlink()
    os.replace(tiny_disk / "_main.log", tiny_disk / "moved-away.log")
    sink.reopen()
    sink.write(batch[written:])
    whole_lines = written // 20
    assert (tiny_disk / "_main.log").read_bytes() == numbered(2 + whole_lines, 300 - whole_lines)


@pytest.mark.parametrize("stray", ["_main.log.5000", "_main.log.²", "_main.log.01", "_main.log.-1"])
def test_stray_rotated_names_are_left_alone(tmp_path: Path, stray: str) -> None:
    """Regression (issue 14, item 15): `_main.log.²` crashed start-up (str.isdigit accepts
    it), and `_main.log.5000` made it build a list up to 5000 and rotate needlessly."""
    (tmp_path / stray).write_bytes(b"not ours\n")
    (tmp_path / "_main.log.0").write_bytes(numbered(1, 2))
    (tmp_path / "_main.log").write_bytes(numbered(3, 2))
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=3)
    assert sink.last_sequence() == 4
    sink.open()
    sink.write(numbered(5, 1))
    sink.close()
    assert (tmp_path / "_main.log").read_bytes() == numbered(3, 3)
    assert (tmp_path / "_main.log.0").read_bytes() == numbered(1, 2)
    assert (tmp_path / stray).read_bytes() == b"not ours\n"


def test_rotation_cost_follows_the_files_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (issue 14, item 15): each rotation looked at every index below
    --max_files, present or not (ten thousand checks per rotation for --max_files 10000)."""
    sink = RotatingFileSink(tmp_path, max_file_bytes=40, max_files=10_000)
    sink.open()
    looked_at: list[object] = []
    real_exists = Path.exists

    def counting_exists(path: Path, *args: object, **kwargs: object) -> bool:
        looked_at.append(path)
        return real_exists(path)

    monkeypatch.setattr(Path, "exists", counting_exists)
    sink.write(numbered(1, 10))  # five rotations
    sink.close()
    assert len(looked_at) < 100
    assert [p.read_bytes() for p in files_oldest_first(tmp_path, 5)] == [
        numbered(i, 2) for i in range(1, 11, 2)
    ]


def test_last_sequence_reads_rotations_past_a_lowered_max_files(tmp_path: Path) -> None:
    (tmp_path / "_main.log.4").write_bytes(numbered(1, 3))
    sink = RotatingFileSink(tmp_path, max_file_bytes=1000, max_files=2)
    assert sink.last_sequence() == 3


def test_an_active_file_that_is_a_link_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    """Regression (issue 14, item 12): `_main.log` as a link made the server append
    client text to whatever file it pointed at, or create one anywhere."""
    logs, outside = tmp_path / "logs", tmp_path / "outside"
    logs.mkdir()
    outside.write_bytes(b"precious\n")
    (logs / "_main.log").symlink_to(outside)
    (logs / "_main.log.0").symlink_to(tmp_path / "created-anywhere")
    sink = RotatingFileSink(logs, max_file_bytes=1000, max_files=2)
    assert sink.last_sequence() == 0
    with pytest.raises(SymlinkRefused):
        sink.open()
    assert outside.read_bytes() == b"precious\n"
    assert not (tmp_path / "created-anywhere").exists()


def test_a_link_planted_while_running_is_refused_then_the_write_goes_on(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious\n")
    logs = tmp_path / "logs"
    sink = RotatingFileSink(logs, max_file_bytes=1000, max_files=2)
    sink.open()
    sink.write(numbered(1, 1))
    (logs / "_main.log").unlink()
    (logs / "_main.log").symlink_to(outside)
    with pytest.raises(SinkWriteError) as failed:
        sink.write(numbered(2, 1))
    assert isinstance(failed.value.cause, SymlinkRefused) and failed.value.written == 0
    assert outside.read_bytes() == b"precious\n"
    (logs / "_main.log").unlink()
    sink.write(numbered(2, 1))
    sink.close()
    assert (logs / "_main.log").read_bytes() == numbered(2, 1)


def test_a_log_directory_that_is_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "logs").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SymlinkRefused):
        RotatingFileSink(tmp_path / "logs", max_file_bytes=1000, max_files=2).open()
    assert list(elsewhere.iterdir()) == []


def test_a_log_directory_swapped_for_a_link_while_running_is_refused(tmp_path: Path) -> None:
    logs, elsewhere = tmp_path / "logs", tmp_path / "elsewhere"
    elsewhere.mkdir()
    sink = RotatingFileSink(logs, max_file_bytes=1000, max_files=2)
    sink.open()
    sink.write(numbered(1, 1))
    logs.rename(tmp_path / "moved-away")
    logs.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SinkWriteError) as failed:
        sink.write(numbered(2, 1))
    assert isinstance(failed.value.cause, SymlinkRefused)
    assert list(elsewhere.iterdir()) == []
    sink.close()


def test_rotation_moves_a_planted_rotated_link_never_its_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious\n")
    logs = tmp_path / "logs"
    sink = RotatingFileSink(logs, max_file_bytes=40, max_files=3)
    sink.open()
    (logs / "_main.log.0").symlink_to(outside)
    sink.write(numbered(1, 8))  # three rotations: the link goes .0 -> .1 -> .2 -> replaced
    sink.close()
    assert outside.read_bytes() == b"precious\n"
    assert not any(p.is_symlink() for p in logs.iterdir())


def test_a_fifo_planted_as_the_active_file_fails_instead_of_blocking(tmp_path: Path) -> None:
    """Without O_NONBLOCK, opening a FIFO nobody reads blocks the writer for good."""
    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkfifo(logs / "_main.log")
    sink = RotatingFileSink(logs, max_file_bytes=1000, max_files=2)
    outcome: list[BaseException | None] = []

    def open_sink() -> None:
        try:
            sink.open()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_sink, daemon=True)
    opener.start()
    opener.join(10)
    if opener.is_alive():  # release it, so the test ends, then fail
        os.close(os.open(logs / "_main.log", os.O_RDONLY | os.O_NONBLOCK))
        opener.join(10)
        pytest.fail("opening a FIFO blocked the writer")
    assert len(outcome) == 1 and isinstance(outcome[0], OSError)
    sink.close()
