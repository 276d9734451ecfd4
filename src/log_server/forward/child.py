"""`python -m log_server.forward.child`: one forwarder in its own process at the lowest CPU
priority (Linux's SCHED_IDLE: it runs only on a core nothing else wants; nice 19 where that
is refused), so that forwarding takes the CPU intake leaves and never the server's
interpreter lock; a forwarder that falls behind under a load that fills every core catches
up from the files when the load eases (its lag is in health and the stats line).

Talks to the server (supervisor.py) in JSON lines: it writes `{"event": NAME, "args": [...]}`
to stdout (`acked` when Kafka has acknowledged every line up to a sequence number, at most
every REPORT_INTERVAL_S; the rest are server events); it reads `stop GRACE_S FINAL_SEQ` on
stdin. End of stdin means the server is gone (even by SIGKILL): it stops at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from log_server.forward.kafka_forwarder import KafkaForwarder

NICENESS = 19
REPORT_INTERVAL_S = 0.1


class _Reporter:
    """Events as JSON lines on stdout; `acked` coalesced to one line per interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_acked_at = 0.0
        self._pending_acked: int | None = None

    def __call__(self, event: str, *args: object) -> None:
        if event == "acked":
            now = time.monotonic()
            if now - self._last_acked_at < REPORT_INTERVAL_S:
                self._pending_acked = int(args[0])  # type: ignore[call-overload]
                return
            self._last_acked_at = now
            self._pending_acked = None
        self._write(event, args)

    def flush(self) -> None:
        if self._pending_acked is not None:
            self._write("acked", (self._pending_acked,))
            self._pending_acked = None

    def _write(self, event: str, args: tuple[object, ...]) -> None:
        line = json.dumps({"event": event, "args": list(args)}) + "\n"
        with self._lock:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass  # the server is gone; stdin's end stops us


def _listen(forwarder: KafkaForwarder) -> None:
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["stop"] and len(words) == 3:
            forwarder.stop(float(words[1]), int(words[2]))
            return
    forwarder.stop(0.0, 0)  # stdin closed: the server died


def _flush_periodically(reporter: _Reporter) -> None:
    while True:
        time.sleep(REPORT_INTERVAL_S)
        reporter.flush()


def lowest_priority() -> None:
    """For this process and the threads it starts (librdkafka's inherit it). SCHED_IDLE
    rather than nice 19 alone: a nice-19 thread still gets about 1/70 of a busy core and
    keeps it until the scheduler's next tick; an idle-class one gives way at once when
    intake wakes up (TCP ingest with forwarding on, back-to-back runs: 0.64x of off at nice
    19, 0.75x idle; docs/design.md)."""
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or refused: nice 19 it is
        pass


def main() -> int:
    lowest_priority()  # first: importing librdkafka is already work
    from log_server.forward.kafka_forwarder import KafkaForwarder
    from log_server.forward.target import parse_forward_url

    parser = argparse.ArgumentParser(prog="python -m log_server.forward.child")
    parser.add_argument("url", type=parse_forward_url)
    parser.add_argument("--log_dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--after_seq", type=int, required=True)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    reporter = _Reporter()
    forwarder = KafkaForwarder(
        args.url, args.log_dir, args.name, args.after_seq, args.fresh, reporter
    )
    threading.Thread(target=_listen, args=(forwarder,), daemon=True).start()
    threading.Thread(target=_flush_periodically, args=(reporter,), daemon=True).start()
    try:
        forwarder.run()
    finally:
        reporter.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
