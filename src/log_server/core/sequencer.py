"""Global sequence numbers: one counter for every message from every source."""

from __future__ import annotations


class Sequencer:
    """Hands out strictly increasing numbers, continuing from the last one on disk so that
    numbers never go back across restarts."""

    def __init__(self, last_issued: int = 0) -> None:
        self._last = last_issued

    @property
    def last_issued(self) -> int:
        return self._last

    def take(self, count: int) -> range:
        """Reserve `count` consecutive numbers."""
        first = self._last + 1
        self._last += count
        return range(first, first + count)
