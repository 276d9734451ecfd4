"""The server's side of one forwarder: it reads the checkpoint, starts the forwarding process
(child.py), turns what the process reports into server events and the lag that health and
the stats line show, starts it again if it dies, and stops it at shutdown.

Nothing here waits for the process on the intake path: it is a pipe read by the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from log_server.events import ServerEvents
from log_server.forward.checkpoint import Checkpoint
from log_server.forward.lag import LagClock
from log_server.forward.target import KafkaTarget

SAMPLE_INTERVAL_S = 0.1
# A process that ended is started again after this, doubled each time it ends again within
# STABLE_S of its start, up to MAX_RESTART_DELAY_S.
RESTART_DELAY_S = 2.0
MAX_RESTART_DELAY_S = 60.0
STABLE_S = 60.0
STOP_MARGIN_S = 5.0
# What the process may report besides `acked`: each is ServerEvents.forward_<name>.
EVENTS = frozenset({"gap", "skipped", "unreachable", "reachable", "failed"})


class ForwardSupervisor:
    def __init__(
        self,
        target: KafkaTarget,
        log_dir: Path,
        server_name: str,
        written_seq: Callable[[], int],
        events: ServerEvents,
    ) -> None:
        """Reads the checkpoint at once (CheckpointError when it is unreadable)."""
        self.target = target
        self.log_dir = log_dir
        self.server_name = server_name
        self._written_seq = written_seq
        self._events = events
        self.checkpoint = Checkpoint(log_dir / target.checkpoint_name, target.url)
        saved = self.checkpoint.load()
        written = written_seq()
        if saved is None:
            self._why = "no checkpoint yet"
        elif saved > written:
            self._why = (
                f"checkpoint {saved} is past the files' last line {written}: the files were "
                "replaced"
            )
        else:
            self._why = f"checkpoint {self.checkpoint.path.name}"
        # Without a usable checkpoint forwarding starts at the oldest line kept.
        self.acked_seq = saved if saved is not None and saved <= written else 0
        self._fresh = self.acked_seq == 0
        self._clock = LagClock()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._events.forward_started(self.target.url, self.acked_seq + 1, self._why)
        self._task = asyncio.create_task(self._supervise())

    @property
    def name(self) -> str:
        return self.target.url

    def lag(self) -> tuple[int, float]:
        """(lines written but not acknowledged by Kafka, seconds the oldest of them waits)."""
        written = self._written_seq()
        self._clock.written(written, time.monotonic())
        lines = max(0, written - self.acked_seq)
        since = self._clock.behind_since(self.acked_seq)
        if not lines or since is None:
            return lines, 0.0
        return lines, max(0.0, time.monotonic() - since)

    async def stop(self, grace_s: float) -> None:
        """Let the process forward what is written for up to `grace_s`, then end it."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None and process.stdin is not None:
            try:
                process.stdin.write(f"stop {grace_s} {self._written_seq()}\n".encode())
                await process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                await asyncio.wait_for(process.wait(), grace_s + STOP_MARGIN_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _supervise(self) -> None:
        delay = RESTART_DELAY_S
        while not self._stopping:
            started = time.monotonic()
            sampler = asyncio.create_task(self._sample())
            try:
                code = await self._run_once()
            finally:
                sampler.cancel()
            if self._stopping:
                return
            if time.monotonic() - started >= STABLE_S:
                delay = RESTART_DELAY_S
            self._events.forward_failed(
                self.target.url,
                f"the forwarding process exited with {code}",
                self.acked_seq + 1,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(MAX_RESTART_DELAY_S, delay * 2)

    async def _sample(self) -> None:
        while True:
            self._clock.written(self._written_seq(), time.monotonic())
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    async def _run_once(self) -> int:
        argv = [
            sys.executable,
            "-m",
            "log_server.forward.child",
            self.target.url,
            "--log_dir",
            str(self.log_dir),
            "--name",
            self.server_name,
            "--after_seq",
            str(self.acked_seq),
        ]
        if self._fresh:
            argv.append("--fresh")
        self._process = process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        async for line in process.stdout:
            self._handle(line)
        return await process.wait()

    def _handle(self, line: bytes) -> None:
        try:
            report = json.loads(line)
            event, args = str(report["event"]), list(report["args"])
        except (ValueError, KeyError, TypeError):
            return
        if event == "acked":
            self.acked_seq = max(self.acked_seq, int(args[0]))
            self._fresh = False
            return
        if event in EVENTS and not self._stopping:  # after the writer's end, no more lines
            getattr(self._events, f"forward_{event}")(self.target.url, *args)
