"""The last sequence number Kafka acknowledged, kept in the log directory across restarts.

Written to a temporary file, fsynced and renamed over the old one, so a crash leaves either
the old checkpoint or the new one, never half of one. It is saved only after Kafka has
acknowledged every line up to it: a restart resends at most the lines after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class CheckpointError(Exception):
    """The checkpoint exists but cannot be read: the operator decides, not a guess."""


class Checkpoint:
    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target

    def load(self) -> int | None:
        """The saved sequence number, or None when this target has never forwarded here."""
        try:
            data = json.loads(self.path.read_bytes())
            seq = data["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError(f"seq {seq!r} is not a sequence number")
            return seq
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"cannot read the forwarding checkpoint {self.path}: {exc}; remove it to "
                "forward again from the oldest line kept"
            ) from None

    def save(self, seq: int) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"seq": seq, "target": self.target}).encode() + b"\n"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
