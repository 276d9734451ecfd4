"""The server fixtures of the repository's tests/conftest.py, for the client's own tests:
these run against the real server too (tests/support.py starts it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SERVER_TESTS = Path(__file__).resolve().parents[3] / "tests"
sys.path.insert(0, str(SERVER_TESTS))  # for `import support`, as in the server's tests


def _load_server_conftest() -> object:
    """Loaded under a name of its own: two modules named `conftest` cannot share sys.modules."""
    spec = importlib.util.spec_from_file_location("server_conftest", SERVER_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_server_conftest = _load_server_conftest()
server_factory = _server_conftest.server_factory  # type: ignore[attr-defined]
server = _server_conftest.server  # type: ignore[attr-defined]
pytest_collection_modifyitems = _server_conftest.pytest_collection_modifyitems  # type: ignore[attr-defined]
