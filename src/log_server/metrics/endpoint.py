"""`GET /metrics` over HTTP/1.1 on the event loop (--metrics_port).

An asyncio server with h11 (already the gRPC-Web front's HTTP parser) rather than the
client library's own HTTP server, which runs on a thread: on the loop, a scrape reads the
server's counters between two callbacks, takes no lock the writer waits for, and costs the
loop one `generate_latest` (a fraction of a millisecond). One request per connection, then
close; a scraper that is slow or sends junk is bounded in time, size and number.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from urllib.parse import urlsplit

import h11
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from log_server.sources.source import ListenError

PATH = "/metrics"
# Scrapers served at once; more are closed at once (Prometheus sends one at a time).
MAX_SCRAPERS = 16
# A request must have come in whole, and its answer gone out, within this.
REQUEST_TIMEOUT_S = 10.0
MAX_REQUEST_HEAD_BYTES = 16 * 1024
_READ_BYTES = 4096


class MetricsEndpoint:
    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        max_scrapers: int = MAX_SCRAPERS,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.host, self.port = host, port
        self.max_scrapers, self.timeout_s = max_scrapers, timeout_s
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._scrapers: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Bind (port 0 picks a free one); the listener for the ready line. Raises
        ListenError."""
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, reuse_address=True, limit=_READ_BYTES
            )
        except OSError as exc:
            raise ListenError(f"metrics {self.host}:{self.port}", exc) from None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"metrics=[{host}]:{port}" if ":" in host else f"metrics={host}:{port}"

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening and end the scrapes still in progress."""
        self.stop_accepting()
        for task in list(self._scrapers):
            task.cancel()
        if self._scrapers:
            await asyncio.wait(list(self._scrapers))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._scrapers.add(task)
        try:
            if len(self._scrapers) <= self.max_scrapers:
                async with asyncio.timeout(self.timeout_s):
                    await self._answer(reader, writer)
        except (TimeoutError, ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            self._scrapers.discard(task)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
        try:
            request = await _next_request(http, reader)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            await _send(writer, http, status, b"bad request\n", [])
            return
        if request is None:
            return
        method = request.method.decode("ascii", "replace")
        path = urlsplit(request.target.decode("ascii", "replace")).path
        if path != PATH:
            await _send(writer, http, 404, f"not found: the metrics are at {PATH}\n".encode(), [])
            return
        if method not in ("GET", "HEAD"):
            await _send(writer, http, 405, b"GET or HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        accept = next((v for k, v in request.headers if k == b"accept"), b"")
        encode, content_type = choose_encoder(accept.decode("latin-1"))
        body = encode(self.registry)
        self.scrapes += 1
        await _send(
            writer,
            http,
            200,
            body,
            [(b"content-type", content_type.encode())],
            head_only=method == "HEAD",
        )


async def _next_request(http: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    """The request's head, or None if the client closed before sending one."""
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await reader.read(_READ_BYTES))
            continue
        if isinstance(event, h11.Request):
            return event
        return None


async def _send(
    writer: asyncio.StreamWriter,
    http: h11.Connection,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    head_only: bool = False,
) -> None:
    if status >= 400:
        headers = [*headers, (b"content-type", b"text/plain; charset=utf-8")]
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    reason = HTTPStatus(status).phrase.encode()
    out = http.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
    if not head_only:
        out += http.send(h11.Data(data=body)) or b""
    out += http.send(h11.EndOfMessage()) or b""
    writer.write(out)
    await writer.drain()
