"""log_send: like logger(1). One message from the arguments, or one per line of stdin."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from log_server_client.encoding import Level

CONNECT_TIMEOUT_S = 3.0
FLUSH_TIMEOUT_S = 30.0


def build_parser(prog: str = "log_send") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Send log messages to log_server: the arguments as one message, or, "
        "without them, one message per line of standard input until end of file.",
    )
    parser.add_argument("message", nargs="*", help="the message (default: read stdin)")
    parser.add_argument(
        "-l",
        "--level",
        default="info",
        choices=[m.name.lower() for m in Level],
        help="level (default: info)",
    )
    parser.add_argument("-n", "--logger", default="log_send", help="logger name")
    parser.add_argument("--service", default="", help="service name")
    parser.add_argument(
        "-a",
        "--attribute",
        action="append",
        default=[],
        type=_attribute,
        metavar="KEY=VALUE",
        help="a structured attribute of every message (repeatable; kept in order)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=None, help="server port (default: 4020, or 4021 with --grpc)"
    )
    parser.add_argument("--grpc", action="store_true", help="send over gRPC instead of TCP")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "log_send") -> int:
    args = build_parser(prog).parse_args(argv)
    port = args.port or (4021 if args.grpc else 4020)
    client = _client(args, port)
    try:
        if not client.wait_connected(CONNECT_TIMEOUT_S):
            print(
                f"{prog}: error: cannot reach the log server at {args.host}:{port}: "
                f"{_reason(client.last_error)}",
                file=sys.stderr,
            )
            return 1
        attributes = args.attribute
        if args.message:
            client.log(args.level, " ".join(args.message), attributes=attributes)
        else:
            for line in sys.stdin:
                client.log(args.level, line.rstrip("\r\n"), attributes=attributes)
        if not client.flush(FLUSH_TIMEOUT_S):
            print(
                f"{prog}: error: could not hand every message to the log server at "
                f"{args.host}:{port}: {_reason(client.last_error)}",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        client.close(timeout_s=0)


def _client(args: argparse.Namespace, port: int):  # type: ignore[no-untyped-def]
    if args.grpc:
        from log_server_client.grpc_client import GrpcLogClient

        return GrpcLogClient(
            f"{args.host}:{port}", logger_name=args.logger, service_name=args.service
        )
    from log_server_client.client import LogClient

    return LogClient(args.host, port, logger_name=args.logger, service_name=args.service)


def _attribute(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _reason(error: BaseException | None) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) if error else "no answer"


if __name__ == "__main__":
    raise SystemExit(main())
