"""Keep freed memory for reuse instead of handing it back to the kernel at once.

Each TCP read becomes one bytes object of formatted lines (hundreds of KiB) and each write
joins about 1 MiB of them. glibc serves blocks that large with mmap and trims the heap
eagerly, so every read paid for fresh zeroed pages: about a tenth of the server's CPU at
full load (make bench; docs/design.md). Raising the two thresholds lets those blocks be
reused; the memory they keep is bounded by the pipeline's --max_queue_bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters of glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Tune glibc's allocator; False where there is no glibc mallopt (nothing changes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
