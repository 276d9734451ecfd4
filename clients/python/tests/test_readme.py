"""The examples a new user copies (issue 14 item 24) run as written against the real server:
the README's handler snippet logs at INFO, and docs/protocol.md's pycapnp example runs from
the repository root."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support import RunningServer

ROOT = Path(__file__).resolve().parents[3]


def _python_block(document: Path, after: str) -> str:
    text = document.read_text()
    start = text.index(after)
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match, f"no python example after {after!r} in {document.name}"
    return match.group(1)


def _run_from_root(code: str, port: int) -> None:
    code = code.replace("4020", str(port))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_readme_handler_snippet_logs_at_info(server: RunningServer) -> None:
    """Before: the root logger stayed at WARNING, so logging.info() sent nothing."""
    _run_from_root(_python_block(ROOT / "README.md", "## Python"), server.tcp_port)
    line = server.wait_for_line(" paid ")
    assert line.endswith(" service=myapp order_id=7"), line


def test_protocol_doc_pycapnp_example_runs_from_the_repository_root(
    server: RunningServer,
) -> None:
    """Before: it loaded "logger.capnp", which exists only in the schema folder."""
    code = _python_block(ROOT / "docs" / "protocol.md", "Example (Python, pycapnp")
    _run_from_root(code, server.tcp_port)
    assert re.search(r"\bme\s.*INFO\s.* hello\b", server.wait_for_line(" hello"))


def test_docs_say_tail_F_which_follows_rotation() -> None:
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "tail -f" not in document.read_text(), document.name
