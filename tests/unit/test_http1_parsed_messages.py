"""What the HTTP/1 parser makes of a head, field by field (issue 14): the request the policy decides
and the framing the sidecar relays by. Both parsers, the fast one and the line-by-line one it falls
back to, must give the same answer: the sidecar uses whichever accepts the head first."""

from __future__ import annotations

import pytest

from mesh.proxy.http1 import (
    BadMessage,
    Framing,
    parse_request,
    parse_request_strictly,
    parse_response,
    parse_response_strictly,
)

NONE, LENGTH, CHUNKED, UNTIL_CLOSE = Framing.NONE, Framing.LENGTH, Framing.CHUNKED, Framing.UNTIL_CLOSE


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# (method, target, version, host, framing, length, keep_alive, expect_continue)
REQUESTS = [
    (head("GET /get HTTP/1.1", "Host: a.test"), ("GET", "/get", "HTTP/1.1", "a.test", NONE, 0, True, False)),
    (
        head("POST /up?x=1 HTTP/1.1", "Host: a.test:8080", "Content-Length: 12"),
        ("POST", "/up?x=1", "HTTP/1.1", "a.test", LENGTH, 12, True, False),
    ),
    (
        head("POST /up HTTP/1.1", "Host: a.test", "Content-Length: 0"),
        ("POST", "/up", "HTTP/1.1", "a.test", NONE, 0, True, False),
    ),
    (
        head("PUT /up HTTP/1.1", "Host: a.test", "Transfer-Encoding: gzip, Chunked"),
        ("PUT", "/up", "HTTP/1.1", "a.test", CHUNKED, 0, True, False),
    ),
    (
        head("POST /up HTTP/1.1", "Host: a.test", "Content-Length: 3", "Expect: 100-Continue"),
        ("POST", "/up", "HTTP/1.1", "a.test", LENGTH, 3, True, True),
    ),
    (
        head("POST /up HTTP/1.1", "Host: a.test", "Content-Length: 3", "Expect: nothing"),
        ("POST", "/up", "HTTP/1.1", "a.test", LENGTH, 3, True, False),
    ),
    (head("GET / HTTP/1.0"), ("GET", "/", "HTTP/1.0", None, NONE, 0, False, False)),
    (
        head("GET / HTTP/1.0", "Connection: Keep-Alive"),
        ("GET", "/", "HTTP/1.0", None, NONE, 0, True, False),
    ),
    (
        head("GET / HTTP/1.1", "Host: a.test", "Connection: keep-alive, Close"),
        ("GET", "/", "HTTP/1.1", "a.test", NONE, 0, False, False),
    ),
    (
        head("GET / HTTP/1.1", "Host: a.test", "Connection: Upgrade"),
        ("GET", "/", "HTTP/1.1", "a.test", NONE, 0, True, False),
    ),
    (
        head("OPTIONS * HTTP/1.1", "Host: a.test"),
        ("OPTIONS", "*", "HTTP/1.1", "a.test", NONE, 0, True, False),
    ),
    (
        head("GET https://A.test/x HTTP/1.1", "Host: a.test"),
        ("GET", "https://A.test/x", "HTTP/1.1", "a.test", NONE, 0, True, False),
    ),
    (
        head("GET HTTP://a.test HTTP/1.1"),
        ("GET", "HTTP://a.test", "HTTP/1.1", "a.test", NONE, 0, True, False),
    ),
    (
        head("GET / HTTP/1.1", "Host: Xa.testX", "Connection: keep-alive", "Connection: close"),
        ("GET", "/", "HTTP/1.1", "xa.testx", NONE, 0, False, False),
    ),
    (
        head("POST / HTTP/1.1", "Host: a.test", "Transfer-Encoding:", "Content-Length: 2"),
        ("POST", "/", "HTTP/1.1", "a.test", LENGTH, 2, True, False),
    ),
    (
        head(
            "POST / HTTP/1.0",
            "Connection: keep-alive",
            "Connection: Upgrade",
            "Expect: x",
            "Expect: 100-continue",
        ),
        ("POST", "/", "HTTP/1.0", None, NONE, 0, True, True),
    ),
    (
        head("GET http://a.test/ HTTP/1.0"),
        ("GET", "http://a.test/", "HTTP/1.0", "a.test", NONE, 0, False, False),
    ),
]


def request_fields(request) -> tuple:
    r = request
    return (r.method, r.target, r.version, r.host, r.framing, r.length, r.keep_alive, r.expect_continue)


@pytest.mark.parametrize("parse", [parse_request, parse_request_strictly])
@pytest.mark.parametrize("raw, fields", REQUESTS)
def test_request_heads_give_what_the_policy_and_the_framing_need(parse, raw, fields):
    request = parse(raw)
    assert request_fields(request) == fields
    assert request.head.raw == raw
    assert request.head.start == raw.decode("latin-1").split("\r\n")[0]


@pytest.mark.parametrize("parse", [parse_request, parse_request_strictly])
def test_header_lines_are_kept_in_order_with_blanks_around_values_left_out(parse):
    raw = head(
        "GET / HTTP/1.1",
        "Host: a.test",
        "X-Time: 12:30:00",
        "X-Pad: \t a  b \t",
        "X-Empty:",
        "x-a:1",
        "X-Nbsp: \xa0a\xa0",
        "X-X: Xy X",
    )
    assert parse(raw).head.headers == [
        ("Host", "a.test"),
        ("X-Time", "12:30:00"),
        ("X-Pad", "a  b"),
        ("X-Empty", ""),
        ("x-a", "1"),
        ("X-Nbsp", "\xa0a\xa0"),
        ("X-X", "Xy X"),
    ]


@pytest.mark.parametrize("raw", [raw for raw, _ in REQUESTS])
def test_both_parsers_give_equal_requests(raw):
    assert parse_request(raw) == parse_request_strictly(raw)
    other = raw.replace(b"\r\n\r\n", b"\r\nX-Other: 1\r\n\r\n")
    assert parse_request(raw) != parse_request_strictly(other)
    assert parse_request(raw).head != "not a head"


# (status, framing, length, keep_alive)
RESPONSES = [
    (head("HTTP/1.1 200 OK", "Content-Length: 5"), "GET", (200, LENGTH, 5, True)),
    (head("HTTP/1.1 200 OK", "Content-Length: 0"), "GET", (200, NONE, 0, True)),
    (head("HTTP/1.1 200 OK", "Content-Length: 5", "Connection: close"), "GET", (200, LENGTH, 5, False)),
    (head("HTTP/1.0 200 OK", "Content-Length: 5"), "GET", (200, LENGTH, 5, False)),
    (head("HTTP/1.0 200 OK", "Content-Length: 5", "Connection: keep-alive"), "GET", (200, LENGTH, 5, True)),
    (head("HTTP/1.1 200", "Content-Length: 5"), "GET", (200, LENGTH, 5, True)),
    (head("HTTP/1.1 304 Not Modified", "Content-Length: 120"), "GET", (304, NONE, 0, True)),
    (head("HTTP/1.1 204 No Content", "Content-Length: 120"), "GET", (204, NONE, 0, True)),
    (head("HTTP/1.1 204 No Content", "Connection: close"), "GET", (204, NONE, 0, False)),
    (head("HTTP/1.1 200 OK", "Content-Length: 120"), "HEAD", (200, NONE, 0, True)),
    (head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), "HEAD", (200, NONE, 0, True)),
    (head("HTTP/1.1 199 Early", "Content-Length: 7"), "GET", (199, NONE, 0, True)),
    (head("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade"), "GET", (101, NONE, 0, True)),
    (head("HTTP/1.1 305 Use Proxy", "Content-Length: 7"), "GET", (305, LENGTH, 7, True)),
    (head("HTTP/1.1 205 Reset Content", "Content-Length: 7"), "GET", (205, LENGTH, 7, True)),
    (head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"), "GET", (200, CHUNKED, 0, True)),
    (
        head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Connection: close"),
        "GET",
        (200, CHUNKED, 0, False),
    ),
    (head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"), "GET", (200, UNTIL_CLOSE, 0, False)),
    (head("HTTP/1.1 200 OK"), "GET", (200, UNTIL_CLOSE, 0, False)),
    (head("HTTP/1.1 500 Oops", "Content-Type: text/plain"), "POST", (500, UNTIL_CLOSE, 0, False)),
]


@pytest.mark.parametrize("parse", [parse_response, parse_response_strictly])
@pytest.mark.parametrize("raw, method, fields", RESPONSES)
def test_response_heads_say_where_the_body_ends(parse, raw, method, fields):
    response = parse(raw, method)
    assert (response.status, response.framing, response.length, response.keep_alive) == fields
    assert response.head.raw == raw
    assert response.head.start == raw.decode("latin-1").split("\r\n")[0]
    assert response.head.headers == [tuple(line.split(": ", 1)) for line in raw.decode().split("\r\n")[1:-2]]


LONG = "x" * 100


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"GET / HTTP/1.1\r\nHost: a.test\r\n", "head does not end with an empty line"),
        (head("GET / HTTP/1.1", "Host: a.test", f"{LONG} : 1"), f"malformed header line {LONG[:80]!r}"),
        (
            head("GET / HTTP/1.1", "Host: a.test", f"N{LONG}: a\x01"),
            f"control character in header {'N' + LONG[:39]!r}",
        ),
        (head("GET / HTTP/1.1", "Host: a.test", "X-A: a\nb"), "bare CR or LF in the head"),
        (
            head("GET / HTTP/1.1", "Host: a.test", f"Content-Length: {LONG}"),
            f"bad Content-Length {LONG[:40]!r}",
        ),
        (head("GET / HTTP/1.1", "Host: a.test", "Content-Length: 1, 2"), "differing Content-Length values"),
        (
            head(f"GET / HTTP/1.1 {LONG}", "Host: a.test"),
            f"bad request line {('GET / HTTP/1.1 ' + LONG)[:80]!r}",
        ),
        (head("GET\t/ HTTP/1.1", "Host: a.test"), "bad request line 'GET\\t/ HTTP/1.1'"),
        (head("G(T / HTTP/1.1", "Host: a.test"), "bad request line 'G(T / HTTP/1.1'"),
        (head(f"GET ftp://{LONG}/ HTTP/1.1"), f"bad absolute URI {('ftp://' + LONG)[:80]!r}"),
        (head(f"GET http://[{LONG}/ HTTP/1.1"), f"bad absolute URI {('http://[' + LONG)[:80]!r}"),
        (head("GET http:/// HTTP/1.1", "Host: a.test"), "bad absolute URI 'http:///'"),
        (head(f"GET {LONG} HTTP/1.1", "Host: a.test"), f"bad request target {LONG[:80]!r}"),
        (head("GET http://a.test:99999/ HTTP/1.1"), "bad port in 'a.test:99999'"),
        (head("GET / HTTP/1.1", "Host: a.test", "Host: a.test"), "more than one Host header"),
        (head("GET http://a.test/ HTTP/1.1", "Host: b.test"), "Host header disagrees with the absolute URI"),
        (head("GET / HTTP/1.1", "Host:"), "HTTP/1.1 request without Host"),
        (head("CONNECT a.test:443 HTTP/1.1", "Host: a.test:443"), "CONNECT is not served by the sidecar"),
        (
            head("POST / HTTP/1.1", "Host: a.test", "Content-Length: 1", "Transfer-Encoding: chunked"),
            "both Content-Length and Transfer-Encoding",
        ),
        (
            head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, gzip"),
            "Transfer-Encoding must end with chunked",
        ),
        (head("POST / HTTP/1.0", "Transfer-Encoding: chunked"), "Transfer-Encoding must end with chunked"),
    ],
)
@pytest.mark.parametrize("parse", [parse_request, parse_request_strictly])
def test_refused_request_heads_say_exactly_why(parse, raw, message):
    with pytest.raises(BadMessage) as refused:
        parse(raw)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "raw, message",
    [
        (head(f"HTTP/1.1 2000 {LONG}"), f"bad status line {('HTTP/1.1 2000 ' + LONG)[:80]!r}"),
        (head("HTTP/1.1 200 OK", "Content-Length: 1, 2"), "differing Content-Length values"),
        (head("HTTP/1.1 200 OK", "Content-Length: x"), "bad Content-Length 'x'"),
    ],
)
@pytest.mark.parametrize("parse", [parse_response, parse_response_strictly])
def test_refused_response_heads_say_exactly_why(parse, raw, message):
    with pytest.raises(BadMessage) as refused:
        parse(raw, "GET")
    assert str(refused.value) == message
