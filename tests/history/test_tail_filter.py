"""`log_server tail`'s scan: the lines found by one search per block (`candidate_lines`) and
then kept are exactly those the line-by-line filter keeps, for any lines and filters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from log_server.core.format import format_json, format_text
from log_server.core.records import LogRecord
from log_server.history.follower import LogLine
from log_server.history.tail import build_filter, build_parser, candidate_lines

WORDS = ["needle-7", "WARNING", "app", "svc", "a=b", '"q"', "\\x", "é", "\n", "k=v", "needle"]
texts = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)
records = st.builds(
    LogRecord,
    message=texts,
    logger_name=st.sampled_from(["app", "svc", "", "needle-7"]),
    service_name=st.sampled_from(["svc", "app", ""]),
    level=st.sampled_from([0, 1, 2, 3, 4, 5, 9]),
    attributes=st.lists(st.tuples(st.sampled_from(["k", "a"]), texts), max_size=2),
)
filters = st.lists(
    st.sampled_from(
        [
            ["--grep", "needle-[0-9]+"],
            ["--grep", "needle"],
            ["--grep", "é"],
            ["--grep", "a=b|k=v"],
            ["--grep", r"\bsvc"],
            ["--level", "warning"],
            ["--logger", "app"],
            ["--service", "svc"],
            ["--attr", "k=needle"],
            ["--seq", "3..20"],
        ]
    ),
    max_size=3,
).map(lambda parts: [arg for part in parts for arg in part])


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=25), filters, st.booleans())
def test_the_block_scan_keeps_what_the_line_filter_keeps(
    batch: list[LogRecord], argv: list[str], json_lines: bool
) -> None:
    formatter = format_json if json_lines else format_text
    raws = [
        formatter(seq, record, "2026-12-07T12:00:00.000000+00:00").encode()
        for seq, record in enumerate(batch, start=1)
    ]
    line_filter = build_filter(build_parser().parse_args(argv))
    by_line = [raw for seq, raw in enumerate(raws, start=1) if line_filter.keep(LogLine(seq, raw))]
    block = b"".join(raws)
    by_block = [
        line.raw for line in candidate_lines(block, line_filter.needle) if line_filter.keep(line)
    ]
    assert by_block == by_line
    if line_filter.everything:
        assert by_line == raws
