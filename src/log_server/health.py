"""Whether the server is keeping up with its promise to write what it accepted."""

from __future__ import annotations

from collections.abc import Callable

from log_server.core.format import escape


class Health:
    """OK, or DEGRADED with the reason (writes are failing). Listeners (the gRPC health
    service) hear every change."""

    def __init__(self) -> None:
        self.degraded_reason: str | None = None
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def ok(self) -> bool:
        return self.degraded_reason is None

    def on_change(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def set_degraded(self, reason: str) -> None:
        was_ok = self.ok
        self.degraded_reason = reason
        if was_ok:
            self._notify()

    def set_ok(self) -> None:
        if not self.ok:
            self.degraded_reason = None
            self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.ok)


def status_line(
    name: str,
    health: Health,
    uptime_s: float,
    received: int,
    written: int,
    queued: int,
    connections: int,
    forward_lag: tuple[int, float] | None = None,
) -> str:
    """The one line `echo health | nc host 4020` answers."""
    state = "OK" if health.ok else "DEGRADED"
    line = (
        f"{state} {name} uptime={uptime_s:.0f}s received={received} written={written} "
        f"queued={queued} connections={connections}"
    )
    if forward_lag is not None:
        line += forward_lag_fields(forward_lag)
    if health.degraded_reason:
        line += f' reason="{escape(health.degraded_reason)}"'
    return line + "\n"


def forward_lag_fields(lag: tuple[int, float]) -> str:
    """The forwarders' lag (the largest of them): lines not yet acknowledged, and how long
    the oldest of them has waited."""
    return f" forward_lag_lines={lag[0]} forward_lag_s={lag[1]:.1f}"
