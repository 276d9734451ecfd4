"""GrpcLogClient: the same log() surface over logservice.LogService (needs the [grpc] extra).

The original project's server serves the same methods only as `logservice.LogBridge`: a
client whose first call gets UNIMPLEMENTED sends it again there and stays there."""

from __future__ import annotations

import threading
from typing import Any, Literal

import grpc

from log_server_client.encoding import (
    Attributes,
    Level,
    attribute_pairs,
    lossy_text,
    message_fields,
    to_level,
)
from log_server_client.generated import log_service_pb2 as pb
from log_server_client.sender import BackgroundSender, OnFull, QueuedClient

SERVICES = ("logservice.LogService", "logservice.LogBridge")
_SETTLED = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)


class GrpcTransport:
    def __init__(
        self,
        target: str,
        mode: Literal["batch", "stream", "unary"],
        timeout_s: float,
        ack: bool = False,
    ) -> None:
        self.metadata = (("log-ack", "durable"),) if ack else None
        self.target = target
        self.mode = mode
        self.timeout_s = timeout_s
        self.service = SERVICES[0]
        self._channel: grpc.Channel | None = None

    def connect(self) -> None:
        """Ready, or an error as soon as the first attempt fails (gRPC itself would keep
        retrying until the timeout; the sender has its own backoff)."""
        channel = grpc.insecure_channel(self.target)
        settled = threading.Event()
        states: list[grpc.ChannelConnectivity] = []

        def on_state(state: grpc.ChannelConnectivity) -> None:
            if state in (
                grpc.ChannelConnectivity.READY,
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            ):
                states.append(state)
                settled.set()

        channel.subscribe(on_state, try_to_connect=True)
        settled.wait(self.timeout_s)
        channel.unsubscribe(on_state)
        if not states or states[0] is not grpc.ChannelConnectivity.READY:
            channel.close()
            raise ConnectionError(
                "connection failed" if states else f"no connection within {self.timeout_s} s"
            )
        self._channel = channel
        self._bind(self.service)

    def _bind(self, service: str) -> None:
        assert self._channel is not None
        self.service = service
        prefix = f"/{service}/"
        serialize = pb.LogRequest.SerializeToString
        parse = pb.LogResponse.FromString
        self._unary = self._channel.unary_unary(
            prefix + "LogMessage", request_serializer=serialize, response_deserializer=parse
        )
        self._stream = self._channel.stream_unary(
            prefix + "StreamLogs", request_serializer=serialize, response_deserializer=parse
        )
        self._batch = self._channel.unary_unary(
            prefix + "LogBatch",
            request_serializer=pb.LogBatchRequest.SerializeToString,
            response_deserializer=parse,
        )

    def send(self, batch: list[Any]) -> None:
        try:
            self._send(batch)
        except grpc.RpcError as error:
            unimplemented = error.code() is grpc.StatusCode.UNIMPLEMENTED
            if not unimplemented or self.service != SERVICES[0]:
                raise
            self._bind(SERVICES[1])  # an UNIMPLEMENTED call did nothing: send it again
            self._send(batch)

    def _send(self, batch: list[Any]) -> None:
        if self.mode == "batch":
            replies = [
                self._batch(
                    pb.LogBatchRequest(requests=batch),
                    timeout=self.timeout_s,
                    metadata=self.metadata,
                )
            ]
        elif self.mode == "stream":
            replies = [self._stream(iter(batch), timeout=self.timeout_s, metadata=self.metadata)]
        else:
            replies = [
                self._unary(request, timeout=self.timeout_s, metadata=self.metadata)
                for request in batch
            ]
        if not all(reply.success for reply in replies):
            raise ConnectionError("the log server answered success=false")

    def outstanding(self) -> int:
        return 0

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class GrpcLogClient(QueuedClient):
    """`mode="batch"` (default) sends each batch as one LogBatch call (the fast path);
    `"stream"` sends it on one StreamLogs call; `"unary"` makes one LogMessage call per
    message (what every server of this protocol understands). `ack=True`: each call asks
    (metadata `log-ack: durable`) to be answered only once its messages are on disk; a call
    that fails is sent again, so a message may arrive twice but is not lost. Against the
    original project's server, which serves only `logservice.LogBridge`, the first call's
    UNIMPLEMENTED switches the client to LogBridge for good (nothing is lost)."""

    def __init__(
        self,
        target: str = "127.0.0.1:4021",
        *,
        mode: Literal["batch", "stream", "unary"] = "batch",
        queue_size: int = 100_000,
        on_full: OnFull = "block",
        block_timeout_s: float | None = None,
        timeout_s: float = 10.0,
        logger_name: str = "",
        service_name: str = "",
        ack: bool = False,
    ) -> None:
        self.logger_name = logger_name
        self.service_name = service_name
        self._sender = BackgroundSender(
            GrpcTransport(target, mode, timeout_s, ack),
            name=f"log_server_client-grpc-{target}",
            queue_size=queue_size,
            on_full=on_full,
            block_timeout_s=block_timeout_s,
        )

    def log(
        self,
        level: Level | int | str,
        message: str,
        *,
        attributes: Attributes | None = None,
        **fields: Any,
    ) -> bool:
        values = message_fields(self.logger_name, self.service_name, fields)
        texts: dict[str, Any] = {k: lossy_text(v) for k, v in values.items() if v is not None}
        request = pb.LogRequest(
            level=int(to_level(level)),  # type: ignore[arg-type]  # proto enums take ints
            message=lossy_text(message),
            attributes=[pb.Attribute(key=k, value=v) for k, v in attribute_pairs(attributes)],
            **texts,
        )
        return self._sender.put(request)
