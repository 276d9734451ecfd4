"""Reading back what the sinks wrote: one line at a time, in sequence order, across rotations."""

from log_server.history.follower import LogFollower, LogLine
from log_server.history.parse import parse_line

__all__ = ["LogFollower", "LogLine", "parse_line"]
