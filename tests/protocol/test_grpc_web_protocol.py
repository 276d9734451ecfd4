"""The sans-IO gRPC-Web layer without a network: bytes in, events and bytes out."""

from __future__ import annotations

import base64
import struct

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from log_server.protocol.grpc_web import (
    CONTENT_TYPES,
    Call,
    Closed,
    FrameError,
    GrpcStatus,
    GrpcWebConnection,
    MessageTooLarge,
    Policy,
    Refused,
    decode_text_body,
    parse_timeout,
    split_messages,
)

POLICY = Policy(("http://localhost:*", "http://127.0.0.1:*"), ("localhost", "127.0.0.1", "[::1]"))
OK_ANSWER = b"\x08\x01"


def framed(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def http_request(
    body: bytes,
    method: str = "POST",
    path: str = "/logservice.LogService/LogMessage",
    content_type: str = "application/grpc-web+proto",
    host: str = "localhost:4021",
    origin: str | None = "http://localhost:3000",
    extra: str = "",
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    head += extra + f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def drive(chunks: list[bytes], policy: Policy = POLICY) -> tuple[list[object], bytes, bool]:
    """Feed the chunks in order, answering every call with success."""
    connection = GrpcWebConnection(policy)
    events: list[object] = []
    out = b""
    for chunk in chunks:
        connection.receive_data(chunk)
        while (event := connection.next_event()) is not None:
            events.append(event)
            if isinstance(event, Call):
                connection.answer(GrpcStatus.OK, payload=OK_ANSWER)
        out += connection.data_to_send()
    return events, out, connection.must_close


def responses(data: bytes) -> list[tuple[h11.Response, bytes]]:
    """Parse the server's bytes back with h11 as a client (every request was a POST)."""
    client = h11.Connection(h11.CLIENT)
    out: list[tuple[h11.Response, bytes]] = []
    client.receive_data(data)
    while True:
        if client.our_state is h11.IDLE:
            client.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
        event = client.next_event()
        if event is h11.NEED_DATA:
            return out
        if isinstance(event, h11.Response):
            out.append((event, b""))
        elif isinstance(event, h11.Data):
            out[-1] = (out[-1][0], out[-1][1] + event.data)
        elif isinstance(event, h11.EndOfMessage):
            if client.their_state is not h11.DONE:
                return out  # the server said it closes
            client.start_next_cycle()


def header(response: h11.Response, name: str) -> str | None:
    for key, value in response.headers:
        if key.decode() == name:
            return value.decode()
    return None


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://localhost", True),
        ("http://127.0.0.1:8080", True),
        ("https://localhost:3000", False),
        ("http://localhost.evil.example", False),
        ("http://localhost:3000.evil.example", False),
        ("http://evil.example", False),
        ("null", False),
    ],
)
def test_origin_allow_list(origin: str, allowed: bool) -> None:
    assert POLICY.origin_allowed(origin) is allowed


def test_origin_star_and_exact_patterns() -> None:
    assert Policy(("*",), ()).origin_allowed("https://anything.example")
    exact = Policy(("https://app.example",), ())
    assert exact.origin_allowed("https://app.example")
    assert not exact.origin_allowed("https://app.example:444")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost:4021", True),
        ("LOCALHOST", True),
        ("127.0.0.1:4021", True),
        ("[::1]:4021", True),
        ("attacker.example:4021", False),
        ("localhost:4021:1", False),
        ("localhost:port", False),
        ("[::1", False),
        ("", False),
    ],
)
def test_host_check_against_dns_rebinding(host: str, allowed: bool) -> None:
    assert POLICY.host_allowed(host) is allowed


def test_grpc_timeout_header() -> None:
    assert parse_timeout("10S") == 10.0
    assert parse_timeout("250m") == 0.25
    assert parse_timeout("") is None and parse_timeout("10x") is None


def test_text_body_may_be_several_padded_pieces() -> None:
    pieces = [framed(b"a"), framed(b"bc"), framed(b"def")]
    sent = b"".join(base64.b64encode(p) for p in pieces)
    assert b"=" in sent[:-4], "padding in the middle, as some clients send it"
    assert decode_text_body(sent) == b"".join(pieces)
    with pytest.raises(FrameError):
        decode_text_body(b"abc")
    with pytest.raises(FrameError):
        decode_text_body(b"ab!d")


def test_split_messages_errors() -> None:
    assert split_messages(framed(b"xy") + framed(b""), 10) == [b"xy", b""]
    for bad in (b"\x00\x00", framed(b"xy")[:-1], framed(b"x", flag=1), framed(b"x", flag=0x80)):
        with pytest.raises(FrameError):
            split_messages(bad, 10)
    with pytest.raises(MessageTooLarge):
        split_messages(framed(b"x" * 11), 10)


def test_call_answer_and_keep_alive() -> None:
    request = http_request(framed(b"\x52\x02hi"))
    events, out, closes = drive([request + request])
    assert [type(e) for e in events] == [Call, Call]
    call = events[0]
    assert isinstance(call, Call)
    assert (call.service, call.method, call.message) == (
        "logservice.LogService",
        "LogMessage",
        b"\x52\x02hi",
    )
    answers = responses(out)
    assert len(answers) == 2 and not closes
    response, body = answers[0]
    assert response.status_code == 200
    assert header(response, "access-control-allow-origin") == "http://localhost:3000"
    assert body == framed(OK_ANSWER) + framed(b"grpc-status:0\r\ngrpc-message:\r\n", 0x80)


def test_same_answer_byte_at_a_time() -> None:
    data = (
        http_request(framed(b"\x52\x01x"))
        + http_request(b"", method="OPTIONS", extra="Access-Control-Request-Method: POST\r\n")
        + http_request(b"{}", content_type="application/json")
        + http_request(base64.b64encode(framed(b"")), content_type="application/grpc-web-text")
    )
    whole = drive([data])
    one_by_one = drive([data[i : i + 1] for i in range(len(data))])
    assert whole == one_by_one
    statuses = [r.status_code for r, _ in responses(whole[1])]
    assert statuses == [200, 204, 415, 200]


def test_preflight() -> None:
    extra = (
        "Access-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: content-type,x-grpc-web\r\n"
        "Access-Control-Request-Private-Network: true\r\n"
    )
    _, out, _ = drive([http_request(b"", method="OPTIONS", extra=extra)])
    ((response, _),) = responses(out)
    assert response.status_code == 204
    assert header(response, "access-control-allow-origin") == "http://localhost:3000"
    assert "POST" in (header(response, "access-control-allow-methods") or "")
    assert "x-grpc-web" in (header(response, "access-control-allow-headers") or "")
    assert header(response, "access-control-allow-private-network") == "true"
    assert header(response, "vary") == "Origin"


def test_refused_origin_gets_no_cors_headers_and_closes() -> None:
    events, out, closes = drive([http_request(framed(b""), origin="http://evil.example")])
    assert [e.kind for e in events if isinstance(e, Refused)] == ["origin"]
    ((response, _),) = responses(out)
    assert response.status_code == 403 and closes
    assert header(response, "access-control-allow-origin") is None
    assert header(response, "grpc-status") == str(int(GrpcStatus.PERMISSION_DENIED))


def test_refused_host_never_echoes_host() -> None:
    events, out, closes = drive([http_request(framed(b""), host="rebound.example:4021")])
    assert [e.kind for e in events if isinstance(e, Refused)] == ["host"]
    ((response, _),) = responses(out)
    assert response.status_code == 403 and closes
    assert b"rebound.example" not in b"".join(v for _, v in response.headers)


def test_bad_frames_are_invalid_argument_and_the_connection_goes_on() -> None:
    bad_bodies = [b"\x00\x00", framed(b"x")[:-1], framed(b"x", 1), framed(b"a") + framed(b"b"), b""]
    data = b"".join(http_request(body) for body in bad_bodies) + http_request(framed(b""))
    events, out, closes = drive([data])
    assert [e.kind for e in events if isinstance(e, Refused)] == ["frame"] * len(bad_bodies)
    answers = responses(out)
    codes = [header(r, "grpc-status") for r, _ in answers]
    assert codes == ["3"] * len(bad_bodies) + [None]
    assert isinstance(events[-1], Call) and not closes


def test_oversized_body_is_413_before_reading_it() -> None:
    small = Policy(POLICY.cors_origins, POLICY.allowed_hosts, max_message_bytes=100)
    head = (
        http_request(b"")[: -len(b"Content-Length: 0\r\n\r\n")] + b"Content-Length: 10000\r\n\r\n"
    )
    events, out, closes = drive([head], small)
    assert [e.kind for e in events if isinstance(e, Refused)] == ["size"]
    ((response, _),) = responses(out)
    assert response.status_code == 413 and closes
    assert header(response, "grpc-status") == str(int(GrpcStatus.RESOURCE_EXHAUSTED))


def test_oversized_chunked_body_is_413_while_reading() -> None:
    small = Policy(POLICY.cors_origins, POLICY.allowed_hosts, max_message_bytes=100)
    head = (
        b"POST /logservice.LogService/LogBatch HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/grpc-web\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"100\r\n" + b"\x00" * 256 + b"\r\n"
    events, out, closes = drive([head, chunk])
    assert not events
    events, out, closes = drive([head, chunk, chunk], small)
    assert [e.kind for e in events if isinstance(e, Refused)] == ["size"] and closes
    assert responses(out)[0][0].status_code == 413


def test_declared_message_above_the_limit_is_resource_exhausted() -> None:
    small = Policy(POLICY.cors_origins, POLICY.allowed_hosts, max_message_bytes=100)
    body = struct.pack(">BI", 0, 101)
    events, out, _ = drive([http_request(body)], small)
    assert [e.kind for e in events if isinstance(e, Refused)] == ["size"]
    assert header(responses(out)[0][0], "grpc-status") == "8"


def test_methods_paths_and_content_types() -> None:
    data = (
        http_request(b"", method="GET")
        + http_request(framed(b""), path="/logservice.LogService/StreamLogs")
        + http_request(framed(b""), path="/other.Service/LogMessage")
        + http_request(framed(b""), content_type="application/grpc-web+json")
        + http_request(framed(b""), path="/logservice.LogBridge/LogBatch")
    )
    events, out, _ = drive([data])
    answers = responses(out)
    assert [r.status_code for r, _ in answers] == [405, 200, 200, 415, 200]
    assert [header(r, "grpc-status") for r, _ in answers] == ["3", "12", "12", "3", None]
    assert "StreamLogs" in str(events[1])


def test_garbage_is_a_400_and_a_close() -> None:
    events, out, closes = drive([b"\x16\x03\x01\x02\x00 not http\r\n\r\n"])
    assert closes and isinstance(events[0], Refused)
    assert responses(out)[0][0].status_code == 400


def test_eof_is_closed() -> None:
    events, _, closes = drive([b""])
    assert events == [Closed()] and closes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_random_bytes_never_raise_and_reads_do_not_matter(data: bytes, step: int) -> None:
    prefix = b"POST /logservice.LogService/LogBatch HTTP/1.1\r\nHost: localhost\r\n"
    for sample in (data, prefix + data):
        pieces = [sample[i : i + step] for i in range(0, len(sample), step)]
        assert drive([*pieces, b""]) == drive([sample, b""])


@st.composite
def request_streams(draw: st.DrawFn) -> bytes:
    """A few near-valid requests: real content types, methods and paths, bodies that are
    frames, broken frames or base64, lengths that are right or wrong, keep-alive or not."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        body = draw(
            st.one_of(
                st.binary(max_size=60).map(lambda b: framed(b)),
                st.binary(max_size=60),
                st.binary(max_size=40).map(lambda b: base64.b64encode(framed(b))),
            )
        )
        length = draw(st.sampled_from([len(body), max(0, len(body) - 1), len(body) + 1]))
        method = draw(st.sampled_from(["POST", "OPTIONS", "GET"]))
        path = draw(
            st.sampled_from(
                ["/logservice.LogService/LogMessage", "/logservice.LogBridge/LogBatch", "/x"]
            )
        )
        content_type = draw(st.sampled_from([*CONTENT_TYPES, "text/plain"]))
        origin = draw(st.sampled_from(["", "Origin: http://localhost:1\r\n", "Origin: x\r\n"]))
        close = draw(st.sampled_from(["", "Connection: close\r\n"]))
        out += (
            f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"{origin}{close}Content-Length: {length}\r\n\r\n"
        ).encode() + body
    return out


@settings(max_examples=300, deadline=None)
@given(request_streams(), st.integers(min_value=1, max_value=40))
def test_near_valid_requests_same_answer_however_read(data: bytes, step: int) -> None:
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    assert drive([*pieces, b""]) == drive([data, b""])
