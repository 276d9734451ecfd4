"""Command line: flags -> Config -> Server. The only place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from log_server import __version__
from log_server.config import Config, ConfigError

EXIT_USAGE = 2
EXIT_STARTUP = 1


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad value gets one line naming the flag, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _spellings(flags: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for flag in flags:
        out.append(flag)
        dashed = "--" + flag[2:].replace("_", "-")
        if dashed != flag:
            out.append(dashed)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="log_server",
        description="Local log server: TCP (Cap'n Proto) and gRPC in, ordered rotating files out.",
    )
    for f in dataclasses.fields(Config):
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name}
        if f.type in (bool, "bool") and f.default:
            # On by default: the flag turns it on explicitly, --no_<flag> turns it off.
            parser.add_argument(
                *_spellings(tuple("--no_" + flag[2:] for flag in meta["flags"])),
                dest=f.name,
                action="store_false",
                default=None,
                help=f"turn off: {meta['help']}",
            )
            kwargs.update(action="store_true", default=None, help=meta["help"])
        elif f.type in (bool, "bool"):
            kwargs.update(action="store_true", default=None, help=meta["help"])
        else:
            kwargs.update(
                default=None,
                metavar=meta["flags"][0][2:].upper() if meta["choices"] is None else None,
                choices=meta["choices"],
                help=f"{meta['help']} (default: {meta['show'](f.default)})",
            )
            if meta["parse"] is not None:
                kwargs["type"] = _typed(meta["parse"])
            if meta["repeat"]:
                kwargs["action"] = "append"
        parser.add_argument(*_spellings(meta["flags"]), **kwargs)
    parser.add_argument("--version", action="version", version=f"log_server {__version__}")
    return parser


def _typed(parse: Any) -> Any:
    """Wrap a parser so argparse reports its ValueError text, not just 'invalid value'."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("invalid literal for ")) from exc

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    given: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in vars(namespace).items()
        if v is not None
    }
    try:
        return Config(**given)
    except ConfigError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["send"]:
        return _send(args[1:])
    if args[:1] == ["tail"]:
        from log_server.history.tail import main as tail_main

        return tail_main(args[1:])
    config = config_from_args(args)
    # Imported here so that `tail` and `send` start without the server's modules.
    from log_server.server import Server, StartupError, UnwrittenLinesError

    try:
        _run(Server(config).run())
    except StartupError as exc:
        print(f"log_server: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    except UnwrittenLinesError:
        return EXIT_STARTUP
    return 0


def _send(argv: list[str]) -> int:
    """`log_server send ...`: the Python client's `log_send`, under the server's command."""
    try:
        from log_server_client.cli import main as send_main
    except ImportError:
        print(
            "log_server send: error: the Python client is not installed "
            "(pip install clients/python)",
            file=sys.stderr,
        )
        return EXIT_STARTUP
    return send_main(argv, prog="log_server send")


def _run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop has no Windows build; asyncio's loop works, only slower
        import asyncio

        asyncio.run(coro)
    else:
        uvloop.run(coro)
