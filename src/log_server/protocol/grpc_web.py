"""gRPC-Web over HTTP/1.1, sans-IO: bytes in, events out, bytes to send; no sockets.

h11 parses HTTP/1.1; this module adds what gRPC-Web and a browser need on top of it: the
content types, the 5-byte message frames (1 flag byte + u32 big-endian length) and the
trailer frame (flag 0x80), base64 for `application/grpc-web-text`, CORS (preflight, the
Origin echoed only when it is on the allow-list) and a Host check against DNS rebinding.
Everything refused is answered here with the right HTTP/gRPC status; the adapter only
handles `Call` events (decode, submit, answer) and logs `Refused` ones.

The same HTTP/1.1 side serves OTLP/HTTP logs (`POST /v1/logs`): such a request gets the same
Host/Origin checks and size limit, and comes out as an `OtlpCall` (its body is read by
protocol/otlp_http.py); its refusals are answered as OTLP/HTTP says (a google.rpc.Status).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum

import h11

from log_server.protocol import otlp_http

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The first bytes of every HTTP/2 connection (RFC 9113 3.4): native gRPC sends them."""

CONTENT_TYPES = (
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
)
SERVICES = ("logservice.LogService", "logservice.LogBridge")
UNARY_METHODS = ("LogMessage", "LogBatch")
"""`StreamLogs` is client streaming, which gRPC-Web (and fetch in browsers) cannot do."""

# grpcio refuses a received message above 4 MiB by default, and this server keeps that
# default for native gRPC; gRPC-Web gets the same limit.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# h11's own default (16 KiB) for an incomplete request line + headers; nginx uses 8 KiB.
MAX_HEADER_BYTES = 16 * 1024
# Browsers cache a preflight for at most this long (Chromium caps it at 2 hours).
PREFLIGHT_MAX_AGE_S = 600

_FRAME_HEADER = struct.Struct(">BI")
_MESSAGE_FLAG = 0x00
_COMPRESSED_FLAG = 0x01
_TRAILER_FLAG = 0x80
# What gRPC-Web clients send (grpc-web, Connect-ES, improbable-eng), and ours (log-ack).
_ALLOWED_REQUEST_HEADERS = (
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, grpc-accept-encoding, log-ack"
)
_EXPOSED_HEADERS = "grpc-status, grpc-message"
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_TIMEOUT_RE = re.compile(r"^(\d{1,8})([HMSmun])$")


class GrpcStatus(IntEnum):
    OK = 0
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    UNAVAILABLE = 14


@dataclass(frozen=True)
class Policy:
    """Who may call: CORS origins (`*` any port, `*` alone any origin) and Host names."""

    cors_origins: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    max_message_bytes: int = MAX_MESSAGE_BYTES

    def origin_allowed(self, origin: str) -> bool:
        return any(_origin_matches(pattern, origin) for pattern in self.cors_origins)

    def host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        return name is not None and any(
            allowed == "*" or allowed.lower() == name for allowed in self.allowed_hosts
        )


def _origin_matches(pattern: str, origin: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        base = pattern[:-2]
        if origin == base:
            return True
        rest = origin.removeprefix(base + ":")
        return rest != origin and rest.isdigit() and len(rest) <= 5
    return origin == pattern


def _host_name(host: str) -> str | None:
    """`localhost:4021` -> `localhost`, `[::1]:4021` -> `[::1]`; None when malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[: end + 1], host[end + 1 :]
    else:
        name, _, port = host.partition(":")
        rest = ":" + port if port else ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    return name or None


def parse_timeout(value: str) -> float | None:
    """The `grpc-timeout` header (`10S`, `500m`) in seconds; None when absent or malformed."""
    match = _TIMEOUT_RE.match(value.strip())
    if match is None:
        return None
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def frame_message(payload: bytes, flag: int = _MESSAGE_FLAG) -> bytes:
    return _FRAME_HEADER.pack(flag, len(payload)) + payload


def trailer_frame(status: GrpcStatus, message: str = "") -> bytes:
    block = f"grpc-status:{int(status)}\r\ngrpc-message:{_percent_encode(message)}\r\n"
    return frame_message(block.encode("ascii"), _TRAILER_FLAG)


def _percent_encode(message: str) -> str:
    """grpc-message is percent-encoded UTF-8 (gRPC's PROTOCOL-HTTP2), so it fits a header."""
    out = []
    for byte in message.encode("utf-8"):
        out.append(chr(byte) if 0x20 <= byte <= 0x7E and byte != 0x25 else f"%{byte:02X}")
    return "".join(out)


class FrameError(ValueError):
    """The body is not a sequence of well-formed gRPC-Web message frames."""


def decode_text_body(body: bytes) -> bytes:
    """Base64 of grpc-web-text. Clients may send the body in base64 pieces, each padded,
    one after another, so padding may appear in the middle: decode up to each pad."""
    data = b"".join(body.split())
    if len(data) % 4:
        raise FrameError("grpc-web-text body is not base64 (length is not a multiple of 4)")
    out = bytearray()
    start = 0
    try:
        while start < len(data):
            pad = data.find(b"=", start)
            end = len(data) if pad < 0 else (pad // 4 + 1) * 4
            out += base64.b64decode(data[start:end], validate=True)
            start = end
    except binascii.Error as exc:
        raise FrameError(f"grpc-web-text body is not base64: {exc}") from None
    return bytes(out)


def split_messages(body: bytes, max_message_bytes: int) -> list[bytes]:
    """The payloads of the message frames of a request body. A unary call carries one;
    compression is not negotiated here, so a compressed frame is an error too."""
    messages = []
    at = 0
    while at < len(body):
        if len(body) - at < _FRAME_HEADER.size:
            raise FrameError(f"body ends inside a frame header ({len(body) - at} of 5 bytes)")
        flag, size = _FRAME_HEADER.unpack_from(body, at)
        at += _FRAME_HEADER.size
        if flag == _COMPRESSED_FLAG:
            raise FrameError("compressed frame, but no grpc-encoding was negotiated")
        if flag != _MESSAGE_FLAG:
            raise FrameError(f"unexpected frame flag 0x{flag:02x} in a request")
        if size > max_message_bytes:
            raise MessageTooLarge(size, max_message_bytes)
        if len(body) - at < size:
            raise FrameError(f"frame says {size} bytes, body has {len(body) - at}")
        messages.append(body[at : at + size])
        at += size
    return messages


class MessageTooLarge(FrameError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes is larger than the limit of {limit} bytes")


@dataclass(frozen=True)
class Call:
    """A unary call to hand to the pipeline: `message` is the request's bytes."""

    service: str
    method: str
    message: bytes
    text: bool
    content_type: str
    origin: str | None
    ack_durable: bool
    timeout_s: float | None


@dataclass(frozen=True)
class OtlpCall:
    """A `POST /v1/logs` to hand to the pipeline: the body as sent (maybe gzipped)."""

    body: bytes
    content_type: str
    content_encoding: str
    origin: str | None


@dataclass(frozen=True)
class Refused:
    """A request answered with an error status here; `kind` keys the rate-limited log."""

    kind: str
    reason: str
    closes: bool


@dataclass(frozen=True)
class Closed:
    """The peer closed (or the connection must close): nothing more will come."""


Event = Call | OtlpCall | Refused | Closed


@dataclass
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    otlp: bool = False
    """An OTLP/HTTP request (its path is one of OTLP's): refusals are OTLP error bodies."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class GrpcWebConnection:
    """One HTTP/1.1 connection. Feed `receive_data`, take `next_event` until it gives None
    (needs data), send `data_to_send`; answer each `Call` with `answer` before the next
    request is read. `must_close` says to close once the bytes are sent."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._out = bytearray()
        self._request: _Request | None = None
        self._call: Call | OtlpCall | None = None
        self._refusing: Refused | None = None
        self.must_close = False
        # The largest body a request may carry: one frame; base64 grows it by 4/3.
        self._max_body = ((policy.max_message_bytes + _FRAME_HEADER.size) * 4 + 2) // 3 + 4

    def receive_data(self, data: bytes) -> None:
        self._h11.receive_data(data)

    @property
    def in_request(self) -> bool:
        """A request has begun and is not answered yet (for the stall timeout)."""
        return (
            self._request is not None or self._call is not None or bool(self._h11.trailing_data[0])
        )

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | None:
        if self._call is not None:
            return None  # waiting for `answer`
        while not self.must_close:  # nothing after a `Connection: close` answer, say
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                # Without h11's copy of the bytes, which depends on how they were read.
                reason = f"bad HTTP/1.1 request: {str(exc).split(': ', 1)[0]}"
                return self._refuse_http(exc.error_status_hint, "http", reason, close=True)
            if event is h11.NEED_DATA:
                return None
            if event is h11.PAUSED:
                return None
            if isinstance(event, h11.ConnectionClosed):
                self.must_close = True
                return Closed()
            if isinstance(event, h11.Request):
                result = self._start(event)
                if result is not None:
                    return result
            elif isinstance(event, h11.Data):
                assert self._request is not None
                self._request.body += event.data
                if len(self._request.body) > self._body_limit(self._request):
                    return self._too_large(len(self._request.body))
            elif isinstance(event, h11.EndOfMessage):
                result = self._finish()
                if result is not None:
                    return result
        return None

    def _start(self, event: h11.Request) -> Event | None:
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("ascii").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        request = _Request(event.method.decode("ascii"), event.target.decode("latin-1"), headers)
        path = request.target.partition("?")[0]
        request.otlp = path == otlp_http.LOGS_PATH or path in otlp_http.OTHER_SIGNAL_PATHS
        self._request = request
        host = headers.get("host", "")
        if not self.policy.host_allowed(host):
            return self._refuse_http(
                403,
                "host",
                f"Host {host!r} is not allowed (DNS rebinding guard; see --allowed_hosts)",
                GrpcStatus.PERMISSION_DENIED,
                close=True,
                told="this Host is not allowed (see --allowed_hosts)",
            )
        origin = headers.get("origin")
        if origin is not None and not self.policy.origin_allowed(origin):
            return self._refuse_http(
                403,
                "origin",
                f"Origin {origin!r} is not allowed (see --cors_origins)",
                GrpcStatus.PERMISSION_DENIED,
                close=True,
            )
        if request.method == "OPTIONS":
            return None  # answered at the end of the message
        if request.method != "POST":
            return self._refuse_http(
                405,
                "method",
                f"HTTP method {request.method} ({'OTLP/HTTP' if request.otlp else 'gRPC-Web'} "
                "calls are POST)",
                extra=[("allow", "POST, OPTIONS")],
            )
        if request.otlp:
            return self._start_otlp(request)
        content_type = request.content_type
        if content_type not in CONTENT_TYPES:
            return self._refuse_http(
                415,
                "content-type",
                f"content type {content_type or '(none)'!r} is not gRPC-Web "
                f"({', '.join(CONTENT_TYPES)})",
            )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return self._too_large(int(declared))
        if self._h11.client_is_waiting_for_100_continue:  # curl, for bodies over 1 KiB
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        return None

    def _start_otlp(self, request: _Request) -> Event | None:
        if request.target.partition("?")[0] != otlp_http.LOGS_PATH:
            return self._refuse_http(
                404, "otlp", f"{request.target}: this server takes OTLP logs only (/v1/logs)"
            )
        if request.content_type not in otlp_http.CONTENT_TYPES:
            return self._refuse_http(
                415,
                "content-type",
                f"content type {request.content_type or '(none)'!r} is not OTLP/HTTP "
                f"({', '.join(otlp_http.CONTENT_TYPES)})",
            )
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self._body_limit(request)
        ):
            return self._too_large(int(declared))
        if self._h11.client_is_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        return None

    def _body_limit(self, request: _Request) -> int:
        """OTLP bodies are the message itself (maybe gzipped); gRPC-Web's are framed, maybe
        base64."""
        return self.policy.max_message_bytes if request.otlp else self._max_body

    def _finish(self) -> Event | None:
        request, self._request = self._request, None
        if self._refusing is not None:
            refused, self._refusing = self._refusing, None
            self._next_cycle()
            return refused
        assert request is not None
        if request.method == "OPTIONS":
            self._preflight(request)
            return None
        headers = request.headers
        if request.otlp:
            self._call = OtlpCall(
                bytes(request.body),
                request.content_type,
                headers.get("content-encoding", ""),
                headers.get("origin"),
            )
            return self._call
        content_type = request.content_type
        text = content_type.startswith("application/grpc-web-text")
        service, _, method = request.target.lstrip("/").partition("/")
        if service not in SERVICES or method not in UNARY_METHODS:
            what = (
                "client streaming (StreamLogs) is not possible over gRPC-Web; use LogBatch"
                if method == "StreamLogs"
                else f"no method {request.target!r}"
            )
            return self._refuse_grpc(request, GrpcStatus.UNIMPLEMENTED, "method", what)
        try:
            body = decode_text_body(bytes(request.body)) if text else bytes(request.body)
            messages = split_messages(body, self.policy.max_message_bytes)
        except MessageTooLarge as exc:
            return self._refuse_grpc(request, GrpcStatus.RESOURCE_EXHAUSTED, "size", str(exc))
        except FrameError as exc:
            return self._refuse_grpc(request, GrpcStatus.INVALID_ARGUMENT, "frame", str(exc))
        if len(messages) != 1:
            return self._refuse_grpc(
                request,
                GrpcStatus.INVALID_ARGUMENT,
                "frame",
                f"a unary call carries one message, this one has {len(messages)}",
            )
        self._call = Call(
            service,
            method,
            messages[0],
            text,
            content_type,
            headers.get("origin"),
            headers.get("log-ack", "").strip().lower() == "durable",
            parse_timeout(headers.get("grpc-timeout", "")),
        )
        return self._call

    def answer(self, status: GrpcStatus, message: str = "", payload: bytes = b"") -> None:
        """Answer the pending `Call`: `payload` (the response message) when status is OK."""
        call, self._call = self._call, None
        assert isinstance(call, Call)
        if status is GrpcStatus.OK:
            body = frame_message(payload) + trailer_frame(status)
            if call.text:
                body = base64.b64encode(body)
            headers = [("content-type", call.content_type)]
            self._respond(200, headers + self._cors(call.origin), body)
        else:
            self._respond(200, self._trailers_only(status, message, call.origin, call.content_type))
        self._next_cycle()

    def answer_otlp(self, response: otlp_http.Response) -> None:
        """Answer the pending `OtlpCall`."""
        call, self._call = self._call, None
        assert isinstance(call, OtlpCall)
        headers = [("content-type", response.content_type)]
        if response.retry_after_s is not None:
            headers.append(("retry-after", str(response.retry_after_s)))
        self._respond(response.status, headers + self._cors(call.origin), response.body)
        self._next_cycle()

    def _refuse_grpc(
        self, request: _Request, status: GrpcStatus, kind: str, reason: str
    ) -> Refused:
        origin = request.headers.get("origin")
        content_type = request.headers["content-type"].split(";")[0].strip().lower()
        self._respond(200, self._trailers_only(status, reason, origin, content_type))
        self._next_cycle()
        return Refused(kind, reason, closes=False)

    def _refuse_http(
        self,
        http_status: int,
        kind: str,
        reason: str,
        grpc_status: GrpcStatus = GrpcStatus.INVALID_ARGUMENT,
        close: bool = False,
        extra: list[tuple[str, str]] | None = None,
        told: str | None = None,
    ) -> Refused | None:
        """Answer now, before the body; the body is read and dropped (keep-alive) unless
        the connection closes. Returns the event at once when closing, else at the end.
        `told` is what the client reads, when it should not see the whole `reason`."""
        told = reason if told is None else told
        origin = None
        if self._request is not None and kind != "origin":
            origin = self._request.headers.get("origin")
        otlp = self._request is not None and self._request.otlp
        if otlp:
            assert self._request is not None
            error = otlp_http.error_response(self._request.content_type, http_status, told)
            headers = [("content-type", error.content_type), *(extra or []), *self._cors(origin)]
            body = error.body
        else:
            headers = [
                ("content-type", "text/plain; charset=utf-8"),
                ("grpc-status", str(int(grpc_status))),
                ("grpc-message", _percent_encode(told)),
                *(extra or []),
                *self._cors(origin),
            ]
            body = (told + "\n").encode("utf-8")
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.must_close = True
            return Refused(kind, reason, True)
        # A client waiting for `100 Continue` may never send the body we would skip.
        close = close or self._h11.client_is_waiting_for_100_continue
        refused = Refused(kind, reason, close)
        if close:
            headers.append(("connection", "close"))
        self._respond(http_status, headers, body)
        if close or self._h11.their_state is h11.ERROR:
            self.must_close = True
            return refused
        self._refusing = refused
        return None

    def _too_large(self, size: int) -> Refused | None:
        limit = self._max_body if self._request is None else self._body_limit(self._request)
        reason = f"request body of {size} bytes is larger than the limit of {limit}"
        if self._refusing is not None or self._h11.our_state is not h11.SEND_RESPONSE:
            self.must_close = True
            return self._refusing or Refused("size", reason, True)
        return self._refuse_http(413, "size", reason, GrpcStatus.RESOURCE_EXHAUSTED, close=True)

    def _preflight(self, request: _Request) -> None:
        origin = request.headers.get("origin")
        headers = [("content-length", "0"), *self._cors(origin)]
        if origin is not None:
            headers += [
                ("access-control-allow-methods", "POST, OPTIONS"),
                ("access-control-allow-headers", _ALLOWED_REQUEST_HEADERS),
                ("access-control-max-age", str(PREFLIGHT_MAX_AGE_S)),
            ]
            if request.headers.get("access-control-request-private-network") == "true":
                headers.append(("access-control-allow-private-network", "true"))
        self._send(h11.Response(status_code=204, headers=headers))
        self._send(h11.EndOfMessage())
        self._next_cycle()

    def _cors(self, origin: str | None) -> list[tuple[str, str]]:
        """CORS headers for an allowed Origin (the request's own, never Host or `*`)."""
        if origin is None or not self.policy.origin_allowed(origin):
            return []
        return [
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", _EXPOSED_HEADERS),
            ("vary", "Origin"),
        ]

    def _trailers_only(
        self, status: GrpcStatus, message: str, origin: str | None, content_type: str
    ) -> list[tuple[str, str]]:
        """An error as a trailers-only response: status in the headers, empty body."""
        return [
            ("content-type", content_type),
            ("grpc-status", str(int(status))),
            ("grpc-message", _percent_encode(message)),
            *self._cors(origin),
        ]

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        headers = [*headers, ("content-length", str(len(body)))]
        self._send(h11.Response(status_code=status, headers=headers))
        if body:
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._out += data

    def _next_cycle(self) -> None:
        """Keep-alive: ready for the next request once both sides are done."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        elif self._h11.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self.must_close = True
