"""The Python client tried as a new user would (issue 14 items 20-23): a program whose log
server is down still exits promptly, with one warning; text that is not UTF-8 is replaced,
not fatal; log_send fails fast and says why; the clients reach a --unix_socket server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from support import free_port

EXIT_BOUND_S = 5.0
# Room for starting the interpreter on a loaded machine, not for another wait.
STARTUP_SLACK_S = 3.0


def _python(
    code: str, *args: str, stdin: bytes = b""
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    return result, time.monotonic() - started


HANDLER_APP = """
    import logging, sys
    from log_server_client import LogServerHandler
    logging.getLogger().addHandler(LogServerHandler("127.0.0.1", int(sys.argv[1])))
    logging.getLogger().setLevel(logging.INFO)
    logging.info("nobody listens")
    if sys.argv[2] == "shutdown":
        logging.shutdown()
"""


def test_an_app_whose_server_is_down_exits_within_the_bound_with_one_warning() -> None:
    """Before: about 26 s (the exit hook's flush, then logging.shutdown's flush and close,
    10 s each) and the warning printed twice."""
    for how in ("exit", "shutdown"):
        result, elapsed = _python(HANDLER_APP, str(free_port()), how)
        assert result.returncode == 0, result.stderr
        warnings = [ln for ln in result.stderr.decode().splitlines() if "not delivered" in ln]
        assert len(warnings) == 1, result.stderr
        assert warnings[0].startswith("log_server_client: 1 messages not delivered")
        assert elapsed < EXIT_BOUND_S + STARTUP_SLACK_S, f"{how}: {elapsed:.1f} s"
