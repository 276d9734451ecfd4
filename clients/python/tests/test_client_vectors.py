"""The shared vectors' cases (schema/vectors/README.md) through the client's own encoders:
each case's fields, encoded by the compiled encoder and by pycapnp, decode to those fields
again, and to what the reference `packed` bytes decode to. Over the real server the
conformance program sends them (tests/interop/)."""

from __future__ import annotations

from typing import Any

import pytest
from log_server_client.encoding import FIELD_NAMES, FrameEncoder, to_level
from support import LOGGER_SCHEMA, load_vectors

CASES = load_vectors()["cases"]


def _decoded(packed: bytes) -> dict[str, Any]:
    reader = LOGGER_SCHEMA.LoggerMsg.from_bytes_packed(packed)
    fields: dict[str, Any] = {name: reader._get(capnp) for name, capnp in FIELD_NAMES.items()}
    fields["message"] = reader.message
    fields["level"] = str(reader.level).upper()
    fields["attributes"] = [{"key": a.key, "value": a.value} for a in reader.attributes]
    return fields


@pytest.mark.parametrize("native", [True, False], ids=["compiled", "pycapnp"])
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_client_encodes_each_case_as_the_reference_does(case: dict[str, Any], native: bool) -> None:
    if native:
        pytest.importorskip("log_server_native", reason="the compiled encoder is optional")
    fields = dict(case["fields"])
    level, message = fields.pop("level"), fields.pop("message")
    attributes = [(a["key"], a["value"]) for a in fields.pop("attributes")]
    frame = FrameEncoder(native=native).encode(to_level(level), message, fields, attributes)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert _decoded(frame[4:]) == case["fields"]
    assert _decoded(bytes.fromhex(case["packed"])) == case["fields"]
