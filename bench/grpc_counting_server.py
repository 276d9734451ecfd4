"""The yardstick for unary gRPC: a grpc.aio server (on uvloop, like log_server) whose
LogMessage handler only counts. Prints its port, then serves until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
import uvloop

ACCEPTED = b"\x08\x01"  # LogResponse(success=true)


async def main() -> None:
    count = 0

    async def log_message(request: bytes, context: object) -> bytes:
        nonlocal count
        count += 1
        return ACCEPTED

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(log_message)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("logservice.LogService", {"LogMessage": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)
    print(f"counted {count}", file=sys.stderr)


if __name__ == "__main__":
    uvloop.run(main())
