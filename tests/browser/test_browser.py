"""The TypeScript client's example page in a real headless Chromium (Debian's, driven by
playwright-core from clients/typescript/node_modules through drive.mjs): served by a test
HTTP server on another loopback port, so its gRPC-Web calls to the server are cross-origin
and go through CORS; the lines must appear on disk with the page's fields. A page from an
origin outside --cors_origins is refused by the browser and nothing of it is written.

Skipped with the reason when Chromium, node or the package's node_modules are missing; with
LOG_SERVER_BROWSER_REQUIRED=1 (CI) that fails instead."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, RunningServer

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("LOG_SERVER_BROWSER_REQUIRED") == "1"
PACKAGE = ROOT / "clients" / "typescript"
PAGE_DIR = PACKAGE / "examples" / "browser"
DRIVER = Path(__file__).with_name("drive.mjs")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
BUILD_TIMEOUT_S = 300
DRIVE_TIMEOUT_S = 120
LOGGER = "browser-example"


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return ""


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not _chromium():
        return f"no Chromium on PATH ({', '.join(CHROMIUM_NAMES)}; apt-get install chromium)"
    if shutil.which("node") is None:
        return "node not on PATH"
    if not (PACKAGE / "node_modules" / "playwright-core").is_dir():
        return "clients/typescript/node_modules missing (make test-typescript runs npm ci)"
    return None


@functools.cache
def _built_page() -> Path:
    """The example page's bundle, built once per session from the current sources."""
    result = subprocess.run(
        ["node", "scripts/bundle-example.mjs"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, f"bundling the example failed:\n{result.stderr}"
    return PAGE_DIR / "dist" / "app.js"


@pytest.fixture
def page_server() -> Iterator[Callable[[str], str]]:
    """Serve examples/browser on a loopback address (port picked by the OS); returns its URL."""
    reason = _missing()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"browser test cannot run: {reason}")
        pytest.skip(f"browser test not run: {reason}")
    _built_page()
    servers: list[http.server.ThreadingHTTPServer] = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    def serve(host: str) -> str:
        handler = functools.partial(Quiet, directory=str(PAGE_DIR))
        httpd = http.server.ThreadingHTTPServer((host, 0), handler)
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return f"http://{host}:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _drive(page_origin: str, server: RunningServer, expect: str) -> dict[str, Any]:
    url = f"{page_origin}/index.html?server=http://127.0.0.1:{server.grpc_port}"
    result = subprocess.run(
        ["node", str(DRIVER), _chromium(), url, expect],
        capture_output=True,
        text=True,
        timeout=DRIVE_TIMEOUT_S,
    )
    assert result.returncode == 0, f"driver failed:\n{result.stdout}\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _page_lines(server: RunningServer) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.lines()]
    return [line for line in lines if line["logger_name"] == LOGGER]


def test_page_logs_clicks_and_uncaught_errors_cross_origin(
    page_server: Callable[[str], str], server_factory: Callable[..., RunningServer]
) -> None:
    server = server_factory("--format", "json")
    origin = page_server("127.0.0.1")
    assert not origin.endswith(f":{server.grpc_port}"), "the page must be cross-origin"
    report = _drive(origin, server, "accepted")
    assert report["hello"] == "LogMessage: success=true", report
    assert report["flush"] == "flushed", report
    server.wait_for(lambda lines: sum(f'"logger_name":"{LOGGER}"' in ln for ln in lines) >= 7)
    page_lines = _page_lines(server)
    clicks = [line for line in page_lines if line["message"] == "button clicked"]
    assert sorted(line["attributes"]["button"] for line in clicks) == [
        "buy",
        "hello",
        "reject",
        "throw",
    ]
    for line in clicks:
        assert line["level"] == "INFO"
        assert line["service_name"] == "example-page"
        assert line["hostname"] == "127.0.0.1"
        assert line["attributes"]["page"] == "/index.html"
    (thrown,) = [line for line in page_lines if "thrown on purpose" in line["message"]]
    assert thrown["level"] == "ERROR"
    assert thrown["filename"].endswith("/dist/app.js")
    assert thrown["line_number"].isdigit()
    assert thrown["stack_trace"].startswith("Error: thrown on purpose")
    (rejected,) = [line for line in page_lines if line["message"].startswith("unhandled rejection")]
    assert rejected["message"] == "unhandled rejection: rejected on purpose"
    assert rejected["level"] == "ERROR"
    assert "rejected on purpose" in rejected["stack_trace"]
    (hello,) = [line for line in page_lines if line["message"] == "hello from the browser"]
    assert hello["level"] == "INFO"
    assert len(page_lines) == 7, "each message exactly once"


def test_page_from_a_disallowed_origin_is_refused_and_nothing_written(
    page_server: Callable[[str], str], server_factory: Callable[..., RunningServer]
) -> None:
    server = server_factory("--format", "json")
    origin = page_server("127.0.0.2")
    report = _drive(origin, server, "refused")
    assert report["origin"] == origin
    assert report["hello"].startswith("LogMessage failed"), report
    assert report["flush"].startswith("UndeliveredError: 6 log message(s) not delivered"), report
    assert any("blocked by CORS policy" in line for line in report["console"]), report
    server.wait_for_text("is not allowed (see --cors_origins)")
    assert _page_lines(server) == []
