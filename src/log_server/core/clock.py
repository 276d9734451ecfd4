"""The receive time stamped on every line: one clock for every source."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime


def now_iso() -> str:
    """Receive time: ISO-8601, UTC, microseconds (as datetime.isoformat writes it).

    Taken once per read or call, so it is on the hot path: the date and time of the
    current second are formatted once per second."""
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    return f"{_utc_second(seconds)}.{micros:06d}+00:00"


@functools.lru_cache(maxsize=2)
def _utc_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
