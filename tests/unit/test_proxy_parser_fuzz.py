"""Fuzzing the sidecar's parsers (hypothesis): whatever bytes an app sends, the HTTP parser either
returns a request or raises ``BadMessage`` (400 and a decision record), and the TLS reader either
returns a name or raises ``NotClientHello`` (closed and a decision record). Any other exception
would drop the connection without an answer or an audit line."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mesh.proxy import http1, tls

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TEXT = st.binary(max_size=40) | st.sampled_from(
    [b"a", b"a:80", b"a:\xb2", b"[::1]", b"[x", b"\xb2", b"1", b"0", b"-1", b" 5", b"5, 5", b"chunked"]
)
_NAMES = st.sampled_from(
    [b"Host", b"host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"X-A", b"Host "]
)
_TARGETS = st.binary(max_size=30) | st.sampled_from(
    [b"/", b"*", b"http://a/", b"http://[x/", b"http://[::1]:80/", b"http://a:\xb2/", b"https://a@b/"]
)


@st.composite
def request_heads(draw) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"CONNECT", b"G\xb2T"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 "]))
    lines = [method + b" " + draw(_TARGETS) + b" " + version]
    for _ in range(draw(st.integers(0, 5))):
        lines.append(draw(_NAMES) + b": " + draw(_TEXT))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parses_or_refuses(raw: bytes) -> None:
    try:
        request = http1.parse_request(raw)
    except http1.BadMessage:
        return
    assert request.method and request.target


@FUZZ
@given(request_heads())
@example(b"GET / HTTP/1.1\r\nHost: a:\xb2\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xb2\r\n\r\n")
@example(b"GET http://[x/ HTTP/1.1\r\nHost: a\r\n\r\n")
def test_structured_request_heads_parse_or_get_bad_message(raw):
    _parses_or_refuses(raw)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_ending_a_head_parse_or_get_bad_message(data):
    _parses_or_refuses(data + b"\r\n\r\n")


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["GET", "HEAD"]))
def test_response_heads_parse_or_get_bad_message(data, method):
    try:
        http1.parse_response(b"HTTP/1.1 " + data + b"\r\n\r\n", method)
    except http1.BadMessage:
        pass


@st.composite
def client_hellos(draw) -> bytes:
    """A TLS record holding a handshake of random body, with lengths right or wrong."""
    body = draw(st.binary(max_size=200))
    handshake = b"\x01" + draw(st.sampled_from([len(body), len(body) + 1, 0, 0xFFFFFF])).to_bytes(3, "big")
    handshake += body
    length = draw(st.sampled_from([len(handshake), len(handshake) - 1, 4]))
    return b"\x16\x03\x01" + max(length, 0).to_bytes(2, "big") + handshake


@FUZZ
@given(client_hellos() | st.binary(max_size=300))
def test_tls_reader_returns_a_name_or_not_client_hello(data):
    try:
        tls.server_name(tls.client_hello(data))
    except tls.NotClientHello:
        pass


def _outcome(parse, raw: bytes, *args):
    try:
        return parse(raw, *args)
    except http1.BadMessage:
        return "refused"


@FUZZ
@given(request_heads() | st.binary(max_size=200).map(lambda b: b + b"\r\n\r\n"))
@example(b"GET / HTTP/1.1\n\r\nHost: a\r\n\r\n")
@example(b"GET /a HTTP/1.1\r\nHost: a \t\r\nX:\r\n\r\n")
def test_the_fast_request_path_decides_as_the_line_by_line_parser(raw):
    assert _outcome(http1.parse_request, raw) == _outcome(http1.parse_request_strictly, raw)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["GET", "HEAD"]))
@example(b"200 OK\r\nContent-Length: 3\r\nConnection: close", "GET")
@example(b"\xb200 OK", "GET")
def test_the_fast_response_path_decides_as_the_line_by_line_parser(data, method):
    raw = b"HTTP/1.1 " + data + b"\r\n\r\n"
    assert _outcome(http1.parse_response, raw, method) == _outcome(http1.parse_response_strictly, raw, method)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /get HTTP/1.1\r\nHost: httpbin.org\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        b"POST /post?a=1 HTTP/1.1\r\nHost: a.test:8080\r\nContent-Length: 3\r\nX-Empty:\r\n\r\n",
        b"GET http://a.test/x HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n",
    ],
)
def test_ordinary_request_heads_take_the_fast_path(raw, monkeypatch):
    expected = http1.parse_request_strictly(raw)
    monkeypatch.setattr(http1, "parse_request_strictly", None)  # the fallback must not be needed
    assert http1.parse_request(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 204 \r\nDate: Tue, 01 Dec 2026 20:30:10 GMT\r\n\r\n",
        b"HTTP/1.0 302 Found\r\nLocation: /x\r\nConnection: close\r\n\r\n",
    ],
)
def test_ordinary_response_heads_take_the_fast_path(raw, monkeypatch):
    expected = http1.parse_response_strictly(raw, "GET")
    monkeypatch.setattr(http1, "parse_response_strictly", None)
    assert http1.parse_response(raw, "GET") == expected
