"""File descriptors: enough for every connection allowed, with a reserve for the server's
own files, so that clients holding connections at the limit cannot make a rotation (or a
reopen after a failed write) fail for want of a descriptor."""

from __future__ import annotations

import resource
from dataclasses import dataclass

# Descriptors the server needs besides its connections: the active and rotated log files
# during a rotation, the listeners, stdio, the event loop's epoll and wake-up pipes, gRPC's
# own (its completion queue and poller), health probes over the slots refusals keep
# (sources/tcp.py HEALTH_SLOTS), and the Python runtime's. About 40 are open while idle;
# twice that leaves room.
RESERVED_DESCRIPTORS = 80


@dataclass(frozen=True)
class DescriptorBudget:
    """What the server may open: the open-file soft limit after raising it, and how many
    connections each listener may hold within it."""

    soft_limit: int
    raised_from: int | None  # the soft limit before it was raised, when it was
    max_connections: int  # per listener kind: TCP (with the Unix socket) and gRPC

    def lowered(self, asked: int) -> bool:
        return self.max_connections < asked


def raise_open_file_limit() -> tuple[int, int | None]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as far as the kernel allows.
    Returns (soft limit now, soft limit before when it was raised)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else _kernel_max_open_files()
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                return soft, None
            return target, soft
    return soft, None


def _kernel_max_open_files() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 1 << 20


def connection_budget(asked: int, soft_limit: int, listener_kinds: int) -> int:
    """Connections per listener kind that fit in `soft_limit` with the reserve kept (at
    least one, so a server with a tiny limit still serves)."""
    available = max(soft_limit - RESERVED_DESCRIPTORS, listener_kinds)
    return max(1, min(asked, available // listener_kinds))


def plan_descriptors(asked: int, listener_kinds: int) -> DescriptorBudget:
    soft, raised_from = raise_open_file_limit()
    return DescriptorBudget(soft, raised_from, connection_budget(asked, soft, listener_kinds))
