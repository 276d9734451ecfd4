"""The yardsticks for unary gRPC: grpc.aio servers whose LogMessage handler only counts.
Prints its port, then serves until SIGTERM.

  --style reference  what the benchmarks issue measured its "~4k unary calls/s" with
                     (../shared/peer-bench/grpc_bench.py): the servicer class generated from
                     log_service.proto, protobuf messages in and out, grpc.aio on asyncio's
                     own event loop. The goal is a ratio to this server.
  --style lean       a stricter floor: raw bytes in and out (no protobuf work at all), on
                     uvloop like log_server. Reported next to the goal, not judged.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import grpc

from log_server.generated import log_service_pb2 as pb
from log_server.generated import log_service_pb2_grpc as pb_grpc


class Counter:
    def __init__(self) -> None:
        self.count = 0


def reference_server(counter: Counter) -> Any:
    accepted = pb.LogResponse(success=True)

    class CountingServicer(pb_grpc.LogServiceServicer):
        async def LogMessage(self, request: pb.LogRequest, context: Any) -> pb.LogResponse:  # noqa: N802
            counter.count += 1
            return accepted

    server = grpc.aio.server()
    pb_grpc.add_LogServiceServicer_to_server(CountingServicer(), server)
    return server


def lean_server(counter: Counter) -> Any:
    accepted = pb.LogResponse(success=True).SerializeToString()

    async def log_message(request: bytes, context: Any) -> bytes:
        counter.count += 1
        return accepted

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(log_message)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("logservice.LogService", {"LogMessage": handler})]
    )
    return server


async def serve(style: str) -> None:
    counter = Counter()
    server = reference_server(counter) if style == "reference" else lean_server(counter)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)
    print(f"counted {counter.count}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--style", choices=["reference", "lean"], default="reference")
    style = parser.parse_args().style
    if style == "lean":
        import uvloop

        uvloop.run(serve(style))
    else:
        asyncio.run(serve(style))


if __name__ == "__main__":
    main()
