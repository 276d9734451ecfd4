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
    parser.add_argument(
        "--unix_socket",
        metavar="PATH",
        help="send to the server's --unix_socket at PATH instead of --host/--port",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "log_send") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.unix_socket and args.grpc:
        parser.error("--unix_socket is the TCP protocol; it cannot be used with --grpc")
    port = args.port or (4021 if args.grpc else 4020)
    where = args.unix_socket or f"{args.host}:{port}"
    try:
        client = _client(args, port)
    except ImportError as exc:
        if not args.grpc:
            raise
        print(
            f"{prog}: error: --grpc needs the client's gRPC extra ({exc.name or exc} is "
            "missing): pip install 'log_server_client[grpc]'",
            file=sys.stderr,
        )
        return 1
    try:
        if not client.wait_connected(CONNECT_TIMEOUT_S):
            print(
                f"{prog}: error: cannot reach the log server at {where}: "
                f"{_reason(client.last_error)}",
                file=sys.stderr,
            )
            return 1
        attributes = args.attribute
        if args.message:
            client.log(args.level, " ".join(args.message), attributes=attributes)
        else:
            # Bytes, decoded here: what is not UTF-8 becomes U+FFFD (as the server does)
            # instead of ending the run with the rest of stdin unread.
            for raw in sys.stdin.buffer:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                client.log(args.level, line, attributes=attributes)
        if not client.flush(FLUSH_TIMEOUT_S):
            print(
                f"{prog}: error: could not hand every message to the log server at "
                f"{where}: {_reason(client.last_error)}",
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

    return LogClient(
        args.host,
        port,
        logger_name=args.logger,
        service_name=args.service,
        unix_socket=args.unix_socket,
    )


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
