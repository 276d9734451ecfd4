"""Generate the protobuf/gRPC stubs committed in src/log_server/generated.

The stubs are committed so that installing the server needs no protoc; the test
tests/test_generated.py runs this generator into a temporary folder and fails when
the committed files drift from the .proto.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "src" / "log_server" / "schema" / "log_service.proto"
OUT = ROOT / "src" / "log_server" / "generated"
STUBS = ("log_service_pb2.py", "log_service_pb2.pyi", "log_service_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO.parent}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            PROTO.name,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for name in STUBS:
            text = (Path(tmp) / name).read_text()
            # grpc_tools emits a top-level import; the stubs live inside a package.
            text = text.replace("import log_service_pb2 as", "from . import log_service_pb2 as")
            (out_dir / name).write_text(text)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
