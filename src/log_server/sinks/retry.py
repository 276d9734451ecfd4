"""When to retry a failed write, and how long to wait: a pure policy a test steps through
without sleeping. The decision itself is simple here: the writer always retries, because
an accepted message must never be dropped; what changes is the health it reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    #: Failed attempts after which the server reports itself DEGRADED (1 try + 3 retries
    #: all failed); it goes on retrying at `max_delay_s` until the write succeeds.
    attempts_before_degraded: int = 4
    initial_delay_s: float = 0.05
    factor: float = 2.0
    max_delay_s: float = 2.0

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1-based)."""
        return min(self.max_delay_s, self.initial_delay_s * self.factor ** (failures - 1))

    def is_degraded(self, failures: int) -> bool:
        return failures >= self.attempts_before_degraded
