"""Running the clients' conformance programs (schema/vectors/README.md), shared by the
interop tests: each client registers itself in clients/<lang>/conformance.json and is built
once per session. A client whose toolchain is not on this machine is skipped with the reason;
with LOG_SERVER_INTEROP_REQUIRED=1 (CI) it fails instead, so nothing passes by being absent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest
from support import ROOT

REQUIRED = os.environ.get("LOG_SERVER_INTEROP_REQUIRED") == "1"
BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 120
CLIENTS = {
    path.parent.name: {**json.loads(path.read_text()), "dir": path.parent}
    for path in sorted((ROOT / "clients").glob("*/conformance.json"))
}
_built: dict[str, str | None] = {}


def runs(kind: str, transports: tuple[str, ...] = ("tcp", "grpc", "grpc-web")) -> list[Any]:
    """(client, transport) pairs for a scenario."""
    return [
        pytest.param(name, transport, id=f"{name}-{transport}")
        for name, spec in CLIENTS.items()
        if kind in spec["scenarios"]
        for transport in spec["transports"]
        if transport in transports
    ]


def ready(name: str) -> dict[str, Any]:
    """The client's spec once its toolchain is there and it is built (once per session)."""
    spec = CLIENTS[name]
    if name not in _built:
        missing = [tool for tool in spec.get("requires", []) if shutil.which(tool) is None]
        _built[name] = f"{', '.join(missing)} not on PATH" if missing else None
        if not missing and spec.get("build"):
            result = subprocess.run(
                spec["build"],
                cwd=spec["dir"],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
            if result.returncode != 0:
                _built[name] = f"build failed:\n{result.stdout}\n{result.stderr}"
                pytest.fail(f"{name}: {_built[name]}")
    reason = _built[name]
    if reason is not None:
        if REQUIRED or reason.startswith("build failed"):
            pytest.fail(f"{name} conformance cannot run: {reason}")
        pytest.skip(f"{name} conformance not run: {reason}")
    return spec


def run_program(name: str, *args: str, timeout_s: float = RUN_TIMEOUT_S) -> subprocess.Popen[str]:
    spec = ready(name)
    argv = [part.replace("{python}", sys.executable) for part in spec["run"]]
    return subprocess.Popen(
        [*argv, *args],
        cwd=spec["dir"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout_s: float) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"still running after {timeout_s} s: {err}") from None
    return process.returncode, err
