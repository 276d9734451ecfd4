"""A bounded queue and one background thread that sends it in batches, reconnecting with
exponential backoff. Shared by the TCP and gRPC clients; only the transport differs."""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Literal, Protocol, Self

OnFull = Literal["block", "drop"]
BATCH_ITEMS = 2000
ATEXIT_FLUSH_S = 5.0
JOIN_S = 5.0


class QueueFullError(Exception):
    """The queue stayed full for the whole `block_timeout_s` (policy "block")."""


class Transport(Protocol):
    def connect(self) -> None: ...
    def send(self, batch: list[Any]) -> None: ...
    def close(self) -> None: ...
    def outstanding(self) -> int: ...


class BackgroundSender:
    """Items put here are sent in order. Policy when the queue is full: "block" (wait for
    room, up to `block_timeout_s`, then raise QueueFullError) or "drop" (count it in
    `dropped`). A batch that fails is kept and sent again after reconnecting, so a message
    is never lost by the client; one may arrive twice if the connection broke mid-batch."""

    def __init__(
        self,
        transport: Transport,
        name: str,
        queue_size: int = 100_000,
        on_full: OnFull = "block",
        block_timeout_s: float | None = None,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full must be 'block' or 'drop', not {on_full!r}")
        self.transport = transport
        self.queue_size = queue_size
        self.on_full = on_full
        self.block_timeout_s = block_timeout_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.dropped = 0
        self.sent = 0
        self.last_error: BaseException | None = None
        self.connected = False
        self._queue: collections.deque[Any] = collections.deque()
        self._inflight = 0
        self._closing = False
        self._closed: bool | None = None  # close()'s answer, once closed
        self._attempts = 0  # connection attempts made, for wait_connected
        self._connect_requested = False
        self._cond = threading.Condition()
        self._wake = threading.Event()
        if hasattr(transport, "on_broken"):
            transport.on_broken = self._reconnect_soon
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _flush_at_exit(self)

    @property
    def queued(self) -> int:
        """Messages not yet handed to the server."""
        return len(self._queue) + self._inflight

    def put(self, item: Any) -> bool:
        with self._cond:
            if self._closing:
                raise RuntimeError("the client is closed")
            if len(self._queue) >= self.queue_size:
                if self.on_full == "drop":
                    self.dropped += 1
                    return False
                if not self._cond.wait_for(
                    lambda: len(self._queue) < self.queue_size, self.block_timeout_s
                ):
                    raise QueueFullError(
                        f"{self.queue_size} messages waiting for the log server for "
                        f"{self.block_timeout_s}s (last error: {self.last_error})"
                    )
            self._queue.append(item)
            if len(self._queue) == 1:
                self._cond.notify_all()
        return True

    def wait_connected(self, timeout_s: float) -> bool:
        """Connect now (if not yet) and say whether it worked: False as soon as that attempt
        fails (a refused connection answers at once), or after `timeout_s`."""
        with self._cond:
            if self.connected:
                return True
            attempts = self._attempts
            self._connect_requested = True
            self._cond.notify_all()
            self._wake.set()
            self._cond.wait_for(lambda: self.connected or self._attempts > attempts, timeout_s)
            return self.connected

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far was handed to the server (and, with
        acknowledgements, until the server reported it on disk). After close(): at once,
        whether close delivered everything."""
        if self._closed is not None:
            return self._closed
        self._wake.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            if not self._cond.wait_for(lambda: not self._queue and not self._inflight, timeout_s):
                return False
        while self.transport.outstanding():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _reconnect_soon(self) -> None:
        """The connection broke with messages unacknowledged: reconnect and resend."""
        with self._cond:
            self.connected = False
            self._connect_requested = True
            self._cond.notify_all()

    def close(self, timeout_s: float | None = 10.0) -> bool:
        """Flush (up to `timeout_s`), then stop. False if messages were left undelivered;
        those are also reported on stderr (once), never dropped silently. Closing again
        returns the first answer at once: at exit the handler's flush and close and the
        exit hook all close the same client, and their waits must not add up."""
        with self._cond:
            if self._closed is not None:
                return self._closed
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delivered = self.flush(timeout_s)
        with self._cond:
            if self._closed is not None:  # closed meanwhile by another thread
                return self._closed
            self._closing = True
            left = self.queued + self.transport.outstanding()
            self._closed = delivered
            self._cond.notify_all()
        self._wake.set()
        # The thread may be inside a connect; it is a daemon and sees `_closing` next.
        self._thread.join(JOIN_S if deadline is None else max(0.0, deadline - time.monotonic()))
        self.transport.close()
        if not delivered and left:
            print(
                f"log_server_client: {left} messages not delivered to the log server "
                f"(last error: {self.last_error})",
                file=sys.stderr,
            )
        return delivered

    def _run(self) -> None:
        delay = self.reconnect_initial_s
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing or self._connect_requested)
                if self._closing:
                    return
                self._connect_requested = False
                batch = [self._queue.popleft() for _ in range(min(BATCH_ITEMS, len(self._queue)))]
                self._inflight = len(batch)
                self._cond.notify_all()  # room for blocked producers
            if not batch:
                if not self.connected:
                    if self._try_connect():
                        delay = self.reconnect_initial_s
                    elif self.transport.outstanding():  # keep trying: messages wait
                        self._wake.clear()
                        self._wake.wait(delay)
                        delay = min(delay * 2, self.reconnect_max_s)
                        with self._cond:
                            self._connect_requested = True
                continue
            while True:
                try:
                    if not self.connected:
                        if not self._try_connect():
                            assert self.last_error is not None
                            raise self.last_error
                        delay = self.reconnect_initial_s
                    if batch:
                        self.transport.send(batch)
                    self.sent += len(batch)
                    break
                except Exception as exc:  # any failure: reconnect and send the batch again
                    self.last_error = exc
                    self.connected = False
                    self.transport.close()
                    self._wake.clear()
                    self._wake.wait(delay)
                    delay = min(delay * 2, self.reconnect_max_s)
                    if self._closing:
                        with self._cond:
                            self._queue.extendleft(reversed(batch))
                            self._inflight = 0
                            self._cond.notify_all()
                        return
            with self._cond:
                self._inflight = 0
                self._cond.notify_all()

    def _try_connect(self) -> bool:
        try:
            self.transport.connect()
        except Exception as exc:
            self.last_error = exc
        else:
            self.connected = True
        with self._cond:
            self._attempts += 1
            self._cond.notify_all()
        return self.connected


class QueuedClient:
    """What LogClient and GrpcLogClient share: everything but encoding goes to a
    BackgroundSender."""

    _sender: BackgroundSender

    @property
    def dropped(self) -> int:
        return self._sender.dropped

    @property
    def queued(self) -> int:
        return self._sender.queued

    @property
    def last_error(self) -> BaseException | None:
        return self._sender.last_error

    def wait_connected(self, timeout_s: float = 5.0) -> bool:
        return self._sender.wait_connected(timeout_s)

    def flush(self, timeout_s: float | None = None) -> bool:
        return self._sender.flush(timeout_s)

    def close(self, timeout_s: float | None = 10.0) -> bool:
        return self._sender.close(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _flush_at_exit(sender: BackgroundSender) -> None:
    ref = weakref.ref(sender)

    def flush() -> None:
        live = ref()
        if live is not None and not live._closing:
            live.close(ATEXIT_FLUSH_S)

    atexit.register(flush)
