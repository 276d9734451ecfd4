"""What the server asks of every way in: TCP (with the Unix socket), gRPC, and later
gRPC-Web and OTLP. `Server` starts, drains and stops them all the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol


class ListenError(Exception):
    """A source could not bind: one line for the operator, naming where."""

    def __init__(self, where: str, cause: OSError) -> None:
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        super().__init__(f"cannot listen on {where}: {reason}")


@dataclass(frozen=True)
class Tally:
    """What one way in has counted since start, read when /metrics is scraped (metrics/):
    the sources keep these counts anyway, so ingest pays nothing for the metrics."""

    source: str
    received: int
    refused: int
    #: Open now and refused so far, for a source that is its own listener (None otherwise).
    connections: int | None = None
    connections_refused: int | None = None


class Source(Protocol):
    async def start(self) -> str:
        """Bind and serve; returns the listeners for the ready line (`tcp=127.0.0.1:4020`).
        Raises ListenError."""
        ...

    def stop_accepting(self) -> None:
        """No new connections or calls; what is open goes on."""
        ...

    async def drain(self) -> None:
        """Take in what clients have already sent, within the source's own bound, then
        close what is still open."""
        ...

    @property
    def connection_count(self) -> int: ...

    def tallies(self) -> list[Tally]:
        """Its counts, one Tally per protocol it serves (`tcp` and `unix`, say)."""
        ...
