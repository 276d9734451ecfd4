"""Splitting a LogBatchRequest into bounded pieces without decoding it (issue 14 item 8: a
4 MB request of 2-byte entries became 2 million lines and blocked the loop for seconds)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from log_server.generated import log_service_pb2 as pb
from log_server.protocol.proto_codec import BatchTooLarge, batch_pieces, python_batch_pieces

messages = st.lists(st.text(max_size=300), max_size=60)


@given(messages, st.integers(1, 7))
def test_pieces_are_batches_of_the_same_entries_in_order(texts: list[str], size: int) -> None:
    data = pb.LogBatchRequest(
        requests=[pb.LogRequest(message=t) for t in texts]
    ).SerializeToString()
    pieces = batch_pieces(data, max_entries=1000, piece_entries=size)
    assert b"".join(pieces) == data
    decoded = [pb.LogBatchRequest.FromString(piece).requests for piece in pieces]
    assert all(len(requests) <= size for requests in decoded)
    assert [r.message for requests in decoded for r in requests] == texts


def test_a_small_request_is_one_piece_without_a_scan() -> None:
    garbage = b"\xff" * 100  # not scanned: fewer bytes than a piece can hold entries
    assert batch_pieces(garbage, max_entries=1000, piece_entries=1000) == [garbage]


def test_a_limit_below_the_piece_size_is_enforced_on_small_requests() -> None:
    with pytest.raises(BatchTooLarge):
        batch_pieces(b"\x0a\x00" * 11, max_entries=10, piece_entries=1000)


def test_counting_stops_past_the_limit() -> None:
    flood = b"\x0a\x00" * 2_000_000  # 4 MB of empty entries
    with pytest.raises(BatchTooLarge, match=r"more than 10000 messages .*--grpc_max_batch"):
        batch_pieces(flood, max_entries=10_000)
    assert len(batch_pieces(b"\x0a\x00" * 10_000, max_entries=10_000)) == 10


def test_unknown_fields_are_skipped_and_not_counted() -> None:
    entry = pb.LogRequest(message="m").SerializeToString()
    unknown = b"\x10\x96\x01" + b"\x1a\x02ab" + b"\x21" + bytes(8) + b"\x2d" + bytes(4)
    data = (b"\x0a" + bytes([len(entry)]) + entry + unknown) * 3000
    pieces = batch_pieces(data, max_entries=3000, piece_entries=1000)
    assert b"".join(pieces) == data and len(pieces) == 3


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x05abc" * 1000, b"\x0b" * 4000, b"\x0a\xff" * 2000, b"\x0a" + b"\xff" * 4000],
    ids=["truncated entry", "group wire type", "truncated length", "endless varint"],
)
def test_bytes_that_are_not_a_batch_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a logservice.LogBatchRequest"):
        batch_pieces(data, max_entries=10_000)


def test_an_entry_whose_tag_is_not_minimally_encoded_is_counted() -> None:
    """0x8A 0x00 is field 1, length-delimited, too: decoders take it as an entry."""
    assert pb.LogBatchRequest.FromString(b"\x8a\x00\x00" * 3).requests.__len__() == 3
    with pytest.raises(BatchTooLarge):
        batch_pieces(b"\x8a\x00\x00" * 10_001, max_entries=10_000)


native = pytest.importorskip(
    "log_server_native", reason="the compiled decoder (native/) is not installed: run `make test`"
)
fields = st.sampled_from(
    [b"\x0a\x00", b"\x0a\x02ab", b"\x8a\x00\x00", b"\x10\x96\x01", b"\x21" + bytes(8), b"\x2d"]
    + [b"\x0b", b"\x0a\x05", b"\x0a", b"\xff" * 11, b"\x0a\xff\xff\xff\xff\x0f"]
)


def python_scan(data: bytes, max_entries: int, size: int) -> object:
    try:
        pieces = python_batch_pieces(data, max_entries, size)
    except BatchTooLarge:
        return None
    except ValueError as exc:
        return str(exc)
    return list(itertools.accumulate(len(piece) for piece in pieces))


def compiled_scan(data: bytes, max_entries: int, size: int) -> object:
    try:
        return native.log_batch_piece_ends(data, max_entries, size)
    except ValueError as exc:
        return str(exc)


@given(
    st.lists(fields, max_size=40).map(b"".join) | st.binary(max_size=200),
    st.sampled_from([5, 1000]),
    st.integers(1, 9),
)
def test_the_compiled_scan_cuts_and_refuses_as_the_python_one(
    data: bytes, max_entries: int, size: int
) -> None:
    if len(data) // 2 <= min(size, max_entries):
        data += b"\x0a\x00" * (size + 1)  # past the size below which nothing is scanned
    assert compiled_scan(data, max_entries, size) == python_scan(data, max_entries, size)


def test_batch_pieces_uses_the_compiled_scan() -> None:
    with pytest.raises(BatchTooLarge, match="--grpc_max_batch"):
        batch_pieces(b"\x0a\x00" * 2_000_000, max_entries=10_000)
    data = b"\x0a\x00" * 2500
    assert batch_pieces(data, 10_000) == python_batch_pieces(data, 10_000)
