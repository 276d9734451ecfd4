"""Send log messages to log_server.

from log_server_client import LogClient
with LogClient() as log:
    log.log("info", "hello", logger_name="app")
"""

from log_server_client.aio import AsyncLogClient
from log_server_client.client import LogClient
from log_server_client.encoding import Level
from log_server_client.handler import LogServerHandler
from log_server_client.sender import QueueFullError

__all__ = [
    "AsyncLogClient",
    "Level",
    "LogClient",
    "LogServerHandler",
    "QueueFullError",
    "GrpcLogClient",
]


def __getattr__(name: str) -> object:
    if name == "GrpcLogClient":  # imported on use: grpc is an optional extra
        from log_server_client.grpc_client import GrpcLogClient

        return GrpcLogClient
    raise AttributeError(name)
