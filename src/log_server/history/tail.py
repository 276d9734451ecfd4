"""`log_server tail`: the whole rotated set in sequence order, filtered, and `-f` to follow.

Filters that can be decided on the raw bytes (--grep, --level, --logger, --service, --seq)
reject a line before it is parsed: most lines of a large history never are.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from log_server.core.format import parse_sequence
from log_server.core.records import LEVEL_NAMES
from log_server.history.follower import LogFollower, LogLine
from log_server.history.parse import parse_line

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_POLL_SECONDS = 0.2


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (a time without zone is UTC) or relative to now: `10m`, `2h`, `30s`, `1d`."""
    if match := _RELATIVE.fullmatch(text):
        ago = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_seq_range(text: str) -> tuple[int, int]:
    """`A..B`, `A..` or `..B`."""
    low, sep, high = text.partition("..")
    if not sep:
        raise ValueError(f"{text!r} is not A..B")
    return (int(low) if low else 0, int(high) if high else sys.maxsize)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="log_server tail",
        description="Read the rotated log files back in sequence order, filtered; -f follows.",
    )
    p.add_argument("--dir", "--log_dir", dest="dir", type=Path, default=Path("logs"))
    p.add_argument("-n", "--lines", type=int, default=None, help="only the last N matching")
    p.add_argument("-f", "--follow", action="store_true", help="keep following new lines")
    p.add_argument("--since", type=parse_time, help="ISO time or relative (10m, 2h)")
    p.add_argument("--until", type=parse_time, help="ISO time or relative (10m, 2h)")
    p.add_argument("--level", type=str.upper, choices=LEVEL_NAMES, help="this level and above")
    p.add_argument("--logger", help="exact logger name")
    p.add_argument("--service", help="exact service name")
    p.add_argument("--grep", type=re.compile, help="regular expression on the message")
    p.add_argument("--seq", type=parse_seq_range, help="A..B (inclusive)")
    p.add_argument("--attr", action="append", default=[], help="key=value (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    return p


@dataclass(frozen=True)
class LineFilter:
    """`keep` decides a line; every line it keeps holds a match of `needle` (None: no such
    pattern), and `everything` says it keeps every line."""

    keep: Callable[[LogLine], bool]
    needle: re.Pattern[bytes] | None
    everything: bool


def build_filter(args: argparse.Namespace) -> LineFilter:
    """Cheap byte checks first (a line that cannot match is never parsed), then the fields."""
    # On bytes only where that cannot reject a matching line: the file escapes controls, quotes
    # and backslashes; a bytes pattern's classes (\w) are ASCII-only and its `.` one byte; the
    # anchors would apply to the whole line, not the message.
    grep_bytes = (
        re.compile(args.grep.pattern.encode())
        if args.grep and args.grep.pattern.isascii() and not set("\\.^$") & set(args.grep.pattern)
        else None
    )
    levels = set(LEVEL_NAMES[LEVEL_NAMES.index(args.level) :]) if args.level else None
    level_bytes = [name.encode() for name in levels] if levels else None
    attrs = [a.partition("=")[::2] for a in args.attr]
    needles = [
        x.encode()
        for x in (args.logger, args.service, *(value for _, value in attrs))
        if x and x.isprintable() and '"' not in x and "\\" not in x
    ]

    def keep(line: LogLine) -> bool:
        if args.seq and not args.seq[0] <= line.seq <= args.seq[1]:
            return False
        raw = line.raw
        if grep_bytes is not None and grep_bytes.search(raw) is None:
            return False
        if level_bytes is not None and not any(b in raw for b in level_bytes):
            return False
        if any(n not in raw for n in needles):
            return False
        fields = parse_line(raw, "auto")
        if levels is not None and fields.get("level") not in levels:
            return False
        if args.logger and fields.get("logger_name") != args.logger:
            return False
        if args.service and fields.get("service_name") != args.service:
            return False
        if args.grep and not args.grep.search(str(fields.get("message", ""))):
            return False
        attributes = fields.get("attributes")
        for key, value in attrs:
            if not isinstance(attributes, dict) or attributes.get(key) != value:
                return False
        if args.since or args.until:
            moment = _moment(fields)
            if moment is None:
                return False
            if args.since and moment < args.since:
                return False
            if args.until and moment > args.until:
                return False
        return True

    needle = grep_bytes
    if needle is None and needles:
        needle = re.compile(re.escape(needles[0]))
    if needle is None and level_bytes:
        needle = re.compile(b"|".join(map(re.escape, level_bytes)))
    filters = (args.seq, args.grep, args.level, args.logger, args.service, attrs)
    everything = not any(filters) and not (args.since or args.until)
    return LineFilter(keep, needle, everything)


def candidate_lines(block: bytes, needle: re.Pattern[bytes] | None) -> Iterator[LogLine]:
    """The lines of a block of whole lines that hold a match of `needle` (every line when
    None): one regex search over the block finds them, so the lines that cannot match cost
    no Python step (the scan runs near `grep`'s speed)."""
    if needle is None:
        start = 0
        while start < len(block):
            stop = block.index(b"\n", start) + 1
            raw, start = block[start:stop], stop
            if (seq := parse_sequence(raw)) is not None:
                yield LogLine(seq, raw)
        return
    pos = 0
    while (match := needle.search(block, pos)) is not None:
        start = block.rfind(b"\n", 0, match.start()) + 1
        pos = block.index(b"\n", match.start()) + 1
        raw = block[start:pos]
        if (seq := parse_sequence(raw)) is not None:
            yield LogLine(seq, raw)


def _moment(fields: dict[str, object]) -> datetime | None:
    for name in ("timestamp", "received_at"):
        value = fields.get(name)
        if isinstance(value, str) and value:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    line_filter = build_filter(args)
    # Buffered here whatever PYTHONUNBUFFERED says: a write call per line cost as much as
    # the whole scan.
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    try:
        return _tail(args, line_filter, out)
    finally:
        out.close()


def _tail(args: argparse.Namespace, line_filter: LineFilter, out: BinaryIO) -> int:
    keep = line_filter.keep

    def emit(line: LogLine) -> None:
        if args.json:
            out.write(json.dumps(parse_line(line.raw), ensure_ascii=False).encode() + b"\n")
        else:
            out.write(line.raw)

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    after = args.seq[0] - 1 if args.seq else 0
    with LogFollower(args.dir, after_seq=max(after, 0)) as follower:
        last: deque[LogLine] | None = deque(maxlen=args.lines) if args.lines is not None else None
        as_is = line_filter.everything and last is None and not args.json
        while not stopping and (blocks := follower.read_blocks()):
            for block in blocks:
                if as_is:
                    out.write(block)
                    continue
                for line in candidate_lines(block, line_filter.needle):
                    if keep(line):
                        if last is not None:
                            last.append(line)
                        else:
                            emit(line)
        for line in last or ():
            emit(line)
        out.flush()
        reported = follower.gap
        while args.follow and not stopping:
            batch = follower.read_available()
            if follower.gap != reported and (reported := follower.gap) is not None:
                print(
                    f"log_server tail: lines {reported[0]}..{reported[1]} were rotated away "
                    "before they could be read",
                    file=sys.stderr,
                )
            for line in batch:
                if keep(line):
                    emit(line)
            if batch:
                out.flush()
            else:
                time.sleep(_POLL_SECONDS)
    return 0
