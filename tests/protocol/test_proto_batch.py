"""LogBatch decoding: the compiled decoder and the protobuf/format.py path give identical
lines for the same bytes, and both refuse bytes that are not a LogBatchRequest."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.unknown_fields import UnknownFieldSet
from hypothesis import given, settings
from hypothesis import strategies as st

from log_server.generated import log_service_pb2 as pb
from log_server.protocol.proto_codec import batch_decoder, python_batch_decoder

native = pytest.importorskip(
    "log_server_native", reason="the compiled decoder (native/) is not installed: run `make test`"
)
RECEIVED = "2026-11-27T12:00:00.000000+00:00"
STRING_FIELDS = [
    f.name for f in pb.LogRequest.DESCRIPTOR.fields if f.name not in ("level", "attributes")
]

any_text = st.text(max_size=30) | st.sampled_from(["", "a\nb\x1b[2J\x00\x85\u2028", 'q"=x y'])
any_attributes = st.lists(st.tuples(any_text, any_text), max_size=5) | st.builds(
    lambda n: [(f"k{i}", "v") for i in range(n)], st.integers(127, 130)
)
requests = st.builds(
    lambda level, texts, attributes: pb.LogRequest(
        level=level,
        attributes=[pb.Attribute(key=k, value=v) for k, v in attributes],
        **dict(zip(STRING_FIELDS, texts, strict=True)),
    ),
    st.integers(-3, 40),
    st.tuples(*[any_text] * len(STRING_FIELDS)),
    any_attributes,
)


@pytest.mark.parametrize("line_format", ["text", "json"])
@settings(max_examples=150, deadline=None)
@given(batch=st.lists(requests, max_size=8), first_seq=st.integers(1, 10**12))
def test_both_paths_give_identical_lines(
    line_format: str, batch: list[Any], first_seq: int
) -> None:
    data = pb.LogBatchRequest(requests=batch).SerializeToString()
    expected = python_batch_decoder(line_format)(data, first_seq, RECEIVED)
    assert batch_decoder(True, line_format)(data, first_seq, RECEIVED) == expected
    assert expected[1] == len(batch)


def has_unknown_fields(data: bytes) -> bool:
    batch = pb.LogBatchRequest.FromString(data)
    return any(len(UnknownFieldSet(message)) for message in (batch, *batch.requests))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_accepted_or_refused_alike(data: bytes) -> None:
    outcomes: list[object] = []
    for decode in (python_batch_decoder("text"), batch_decoder(True, "text")):
        try:
            outcomes.append(decode(data, 1, RECEIVED))
        except ValueError:
            outcomes.append("refused")
    if outcomes[1] == "refused" and outcomes[0] != "refused" and has_unknown_fields(data):
        # The one known difference: a field number that is ours but with another wire type
        # is kept as an unknown field by protobuf (upb) and refused by prost. The compiled decoder's
        # stricter answer is the one in use (INVALID_ARGUMENT).
        return
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("bad", [b"\xff", b"ok\xc3", b"\xed\xa0\x80"])
def test_a_string_that_is_not_utf8_refuses_the_batch_on_both_paths(bad: bytes) -> None:
    """proto3 strings are UTF-8; native reads them as bytes (no copy) and checks itself."""
    good = pb.LogRequest(message="fine").SerializeToString()
    message_field = b"\x4a" + bytes([len(bad)]) + bad  # field 9 (message), length-delimited
    data = pb.LogBatchRequest(requests=[pb.LogRequest(message="before")]).SerializeToString()
    data += b"\x0a" + bytes([len(good + message_field)]) + good + message_field
    for decode in (python_batch_decoder("text"), batch_decoder(True, "text")):
        with pytest.raises(ValueError, match="LogBatchRequest"):
            decode(data, 1, RECEIVED)
