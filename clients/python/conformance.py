"""The Python client's conformance program (schema/vectors/README.md): run by tests/interop/
against the real server, it sends the shared vectors, survives a restart, and gives up in
bounded time when the server is down."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from log_server_client import GrpcLogClient, LogClient

EXIT_UNDELIVERED = 3


def _client(args: argparse.Namespace, ack: bool = False, hello: bool = False) -> Any:
    host, port = args.address.rsplit(":", 1)
    if args.transport == "grpc":
        return GrpcLogClient(f"{host}:{port}", ack=ack, timeout_s=2.0)
    return LogClient(host, int(port), ack=ack, connect_timeout_s=2.0, hello=hello)


def send_vectors(args: argparse.Namespace) -> int:
    return _send_cases(args, _client(args, ack=True))


def send_to_original(args: argparse.Namespace) -> int:
    """The vectors to the original project's server: with the hello over TCP, and without
    the acknowledged mode, which it does not have."""
    return _send_cases(args, _client(args, hello=True))


def _send_cases(args: argparse.Namespace, client: Any) -> int:
    with open(args.vectors) as f:
        cases = json.load(f)["cases"]
    for case in cases:
        fields = dict(case["fields"])
        level, message = fields.pop("level"), fields.pop("message")
        attributes = [(a["key"], a["value"]) for a in fields.pop("attributes")]
        client.log(level, message, attributes=attributes, **fields)
    return 0 if client.close(timeout_s=30) else EXIT_UNDELIVERED


def survive_restart(args: argparse.Namespace) -> int:
    client = _client(args, ack=True)
    for i in range(args.count):
        client.log("INFO", f"restart {i}", logger_name="conformance")
        time.sleep(0.002)
    return 0 if client.close(timeout_s=60) else EXIT_UNDELIVERED


def server_down(args: argparse.Namespace) -> int:
    client = _client(args)
    for i in range(5):
        client.log("INFO", f"down {i}", logger_name="conformance")
    return 0 if client.close(timeout_s=2) else EXIT_UNDELIVERED


SCENARIOS = {
    "vectors": send_vectors,
    "restart": survive_restart,
    "down": server_down,
    "original": send_to_original,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--transport", choices=["tcp", "grpc"], required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--vectors")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    sys.exit(main())
