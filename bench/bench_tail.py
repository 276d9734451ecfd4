"""`log_server tail --grep` over ~1 GB of rotated history next to `grep -c` on the same files
(issue 15's goal: at most 3x). The history is written directly in the server's text format
(core/format.py, the real formatter) into a temporary directory, deleted afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from log_server.core.format import format_text
from log_server.core.records import LogRecord

FILE_BYTES = 100 * 1024 * 1024
PATTERN = "needle-[0-9]+"


def _write_history(directory: Path, total_bytes: int) -> int:
    """Files `_main.log.9` (oldest) .. `.0`, `_main.log`, as the sink leaves them."""
    received = "2026-12-07T12:00:00.000000+00:00"
    templates = [
        LogRecord(
            hostname="bench-host",
            logger_name=f"svc{i % 7}",
            level=3 if i % 10 else 9,
            filename="worker.py",
            function_name="handle",
            line_number=str(100 + i % 50),
            message=f"needle-{i} found" if i % 100 == 0 else f"request {i} handled in 3 ms",
            service_name="bench",
        )
        for i in range(1000)
    ]
    names = [f"_main.log.{i}" for i in range(9, -1, -1)] + ["_main.log"]
    count = (total_bytes + FILE_BYTES - 1) // FILE_BYTES
    seq = 0
    for name in names[-count:]:
        with open(directory / name, "w") as fh:
            written = 0
            while written < FILE_BYTES:
                block = []
                for record in templates:
                    seq += 1
                    block.append(format_text(seq, record, received))
                text = "".join(block)
                fh.write(text)
                written += len(text)
    return seq


def bench_tail(total_bytes: int = 1024 * 1024 * 1024) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="log_server-bench-tail-"))
    try:
        lines = _write_history(directory, total_bytes)
        files = sorted(str(p) for p in directory.iterdir())
        size = sum(os.path.getsize(p) for p in files)
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # warm cache
        start = time.perf_counter()
        grep = subprocess.run(["grep", "-cE", PATTERN, *files], capture_output=True, text=True)
        grep_s = time.perf_counter() - start
        grep_count = sum(int(line.rsplit(":", 1)[1]) for line in grep.stdout.splitlines())
        start = time.perf_counter()
        tail = subprocess.run(
            [
                sys.executable,
                "-m",
                "log_server",
                "tail",
                "--dir",
                str(directory),
                "--grep",
                PATTERN,
            ],
            capture_output=True,
        )
        tail_s = time.perf_counter() - start
        tail_count = tail.stdout.count(b"\n")
    finally:
        shutil.rmtree(directory)
    row = {
        "name": "tail --grep over rotated history",
        "bytes": size,
        "lines": lines,
        "grep_s": grep_s,
        "tail_s": tail_s,
        "ratio": tail_s / grep_s,
        "verified": tail.returncode == 0 and tail_count == grep_count,
        "verification": f"tail printed {tail_count} lines, grep -c counted {grep_count}",
    }
    print(
        f"tail --grep over {size / 2**30:.2f} GiB ({lines:,} lines): {tail_s:.2f} s, "
        f"grep -c {grep_s:.2f} s, ratio {row['ratio']:.2f} (goal <= 3)",
        flush=True,
    )
    return row
