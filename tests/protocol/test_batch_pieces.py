"""Splitting a LogBatchRequest into bounded pieces without decoding it (issue 14 item 8: a
4 MB request of 2-byte entries became 2 million lines and blocked the loop for seconds)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from log_server.generated import log_service_pb2 as pb
from log_server.protocol.proto_codec import BatchTooLarge, batch_pieces

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
