"""How far behind a forwarder is, in seconds: how long ago the oldest line it has not had
acknowledged was written.

The writer does not timestamp its lines for us, so the forwarder samples (time, last written
sequence number) as it goes; the oldest unacknowledged line was written by the time of the
first sample past the acknowledged number. Precision is the sampling interval.
"""

from __future__ import annotations

from collections import deque


class LagClock:
    def __init__(self, max_samples: int = 10_000) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._max_samples = max_samples

    def written(self, seq: int, now: float) -> None:
        """Lines up to `seq` had been written at `now`."""
        samples = self._samples
        if samples and samples[-1][1] >= seq:
            return
        if len(samples) >= self._max_samples:
            del samples[1]  # thin the middle: the oldest sample is the one the lag needs
        samples.append((now, seq))

    def behind_since(self, acked_seq: int) -> float | None:
        """When the first line after `acked_seq` had been written; None when none has."""
        samples = self._samples
        while samples and samples[0][1] <= acked_seq:
            samples.popleft()
        return samples[0][0] if samples else None
