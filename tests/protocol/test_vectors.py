"""The shared vectors (schema/vectors/vectors.json) replayed through every server decoder:
TCP packed and standard through the pycapnp path and the compiled one, gRPC batches through
protobuf and prost. Every client replays the same file (tests/interop/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support import LOGGER_SCHEMA, ROOT, expected_line, frame, load_vectors

from log_server.generated import log_service_pb2 as pb
from log_server.protocol.connection import PythonConnectionDecoder
from log_server.protocol.proto_codec import batch_decoder

native = pytest.importorskip(
    "log_server_native", reason="the compiled decoder (native/) is not installed: run `make test`"
)

VECTORS = load_vectors()
RECEIVED = "2026-12-07T08:00:00.123456+00:00"
FIRST_SEQ = 1_000
FORMATS = ("text", "json")


def _decoders(line_format: str) -> dict[str, Any]:
    limit = VECTORS["max_frame_bytes"]
    return {
        "python": PythonConnectionDecoder(limit, line_format),
        "native": native.ConnectionDecoder(limit, line_format),
    }


def _feed(decoder: Any, stream: bytes) -> tuple[str, Any]:
    lines, _, stop = decoder.feed(stream, FIRST_SEQ, RECEIVED)
    return lines.decode(), stop


def _expected(templates: list[str]) -> str:
    return "".join(expected_line(t, FIRST_SEQ + i, RECEIVED) for i, t in enumerate(templates))


def test_vectors_are_what_the_generator_makes() -> None:
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "scripts/gen_vectors.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules["gen_vectors"] = gen
    spec.loader.exec_module(gen)
    assert json.loads(gen.render(gen.build())) == VECTORS, (
        "schema/vectors/vectors.json is stale: run `make gen` and commit"
    )


@pytest.mark.parametrize("line_format", FORMATS)
@pytest.mark.parametrize("encoding", ["packed", "standard"])
@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_cases_over_tcp(case: dict[str, Any], encoding: str, line_format: str) -> None:
    payload = bytes.fromhex(case["packed"])
    if encoding == "standard":
        reader = LOGGER_SCHEMA.LoggerMsg.from_bytes_packed(payload)
        message = reader.as_builder(num_first_segment_words=len(payload) // 4 + 1024)
        payload = message.to_bytes()
        assert payload.startswith(bytes(4)), "one segment, as the standard encoding needs"
    for name, decoder in _decoders(line_format).items():
        lines, stop = _feed(decoder, frame(payload))
        assert stop is None, name
        assert lines == _expected([case[line_format]]), name


def _request(fields: dict[str, Any]) -> Any:
    values = {k: v for k, v in fields.items() if k not in ("level", "attributes")}
    attributes = [pb.Attribute(key=a["key"], value=a["value"]) for a in fields["attributes"]]
    return pb.LogRequest(level=pb.Level.Value(fields["level"]), attributes=attributes, **values)


@pytest.mark.parametrize("line_format", FORMATS)
def test_cases_over_grpc_batches(line_format: str) -> None:
    data = pb.LogBatchRequest(
        requests=[_request(case["fields"]) for case in VECTORS["cases"]]
    ).SerializeToString()
    expected = _expected([case[line_format] for case in VECTORS["cases"]])
    for use_native in (False, True):
        lines, count = batch_decoder(use_native, line_format)(data, FIRST_SEQ, RECEIVED)
        assert (lines.decode(), count) == (expected, len(VECTORS["cases"])), use_native


@pytest.mark.parametrize("line_format", FORMATS)
@pytest.mark.parametrize("case", VECTORS["frames"], ids=lambda c: c["name"])
def test_frames(case: dict[str, Any], line_format: str) -> None:
    for name, decoder in _decoders(line_format).items():
        lines, stop = _feed(decoder, bytes.fromhex(case["stream"]))
        assert lines == _expected(case[line_format]), name
        if case["refused"] is None:
            assert stop is None, name
        else:
            kind, reason = case["refused"].split(": ", 1)
            assert stop is not None and stop[0] == kind, name
            if name == "python":  # the libraries word their errors differently
                assert stop[1] == reason


def test_vectors_cover_what_the_contract_promises() -> None:
    names = {case["name"] for case in VECTORS["cases"]} | {f["name"] for f in VECTORS["frames"]}
    for required in ("attributes_past_the_limit", "invalid_utf8_replaced", "standard"):
        assert required in names
    levels = {case["fields"]["level"] for case in VECTORS["cases"]}
    assert levels == set(pb.Level.keys())
    assert Path(ROOT / "schema/vectors/README.md").exists()
