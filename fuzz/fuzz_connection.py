"""Coverage-guided fuzzing of the TCP decoders (atheris): `make fuzz` runs it for a bounded
time. Input bytes are split into reads at fuzzer-chosen points and fed to the pure-Python
decoder (instrumented for coverage) and to the compiled decoder. Finding: any exception
other than the decoders' own results, or any difference between the two outside the
known, documented Cap'n Proto library differences (docs/design.md)."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from log_server.protocol.connection import PythonConnectionDecoder

import log_server_native

RECEIVED = "2026-11-27T12:00:00.000000+00:00"
KNOWN_DIFFERENCES = ("out-of-bounds pointer", "double-far", "did not end cleanly")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    max_frame = fdp.ConsumeIntInRange(1, 4096)
    cuts = sorted({fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 4))})
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    points = [c for c in cuts if 0 < c < len(stream)]
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    python = PythonConnectionDecoder(max_frame)
    native = log_server_native.ConnectionDecoder(max_frame)
    seq = 1
    for piece in pieces:
        expected = python.feed(piece, seq, RECEIVED)
        got = native.feed(piece, seq, RECEIVED)
        reasons = " ".join(r[1] for r in (expected[2], got[2]) if r)
        if any(known in reasons for known in KNOWN_DIFFERENCES):
            return
        if (got[0], got[1], got[2] and got[2][0]) != (
            expected[0],
            expected[1],
            expected[2] and expected[2][0],
        ):
            raise AssertionError(f"decoders differ on {stream!r}: {got!r} != {expected!r}")
        seq += expected[1]


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
