"""What the gateway's HTTP observer records for each exchange of a tunnel (issue 14): method, host,
path, status, response body bytes and the two times, whatever the bytes' segmentation. Each
conversation is fed whole, in 1-byte pieces and in 7-byte pieces: the observer has a shortcut for
whole messages and a general path for pieces, and both must record the same."""

from __future__ import annotations

import itertools

import pytest

from mesh.gateway.httphead import looks_like_http, parse_head
from mesh.gateway.httpstream import HttpObserver

GET = b"GET /get HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def observe(client: bytes, server: bytes, step: int | None) -> tuple[list[tuple], bool]:
    """All client bytes, then all server bytes, in ``step``-byte pieces; the exchanges recorded (while
    running and at close), and whether the observer had stopped before the close."""
    clock = itertools.count(100)
    observer = HttpObserver("default.test", clock=lambda: float(next(clock)))
    for i in range(0, len(client), step or len(client) or 1):
        observer.client_data(client[i : i + (step or len(client))])
    out = []
    for i in range(0, len(server), step or len(server) or 1):
        out += observer.server_data(server[i : i + (step or len(server))])
    stopped = observer.stopped
    out += observer.close()
    return [
        (e.method, e.host, e.path, e.status, e.response_bytes, e.started, e.finished) for e in out
    ], stopped


CONVERSATIONS = {
    "one exchange": (GET, OK, [("GET", "a.test", "/get", 200, 2, 100.0, 101.0)]),
    "keep-alive, pipelined": (
        GET + b"GET /b HTTP/1.1\r\nHost: b.test\r\n\r\n",
        OK + b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        [("GET", "a.test", "/get", 200, 2, 100.0, 102.0), ("GET", "b.test", "/b", 404, 0, 101.0, 103.0)],
    ),
    "request bodies (length and chunked) are not requests": (
        b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 26\r\n\r\nGET /no HTTP/1.1\r\nX: 1\r\n\r\n"
        b"PUT /c HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1A\r\nGET /no HTTP/1.1\r\n\r\nxxxxxx\r\n0\r\nT: 1\r\n\r\n" + GET,
        OK * 3,
        [
            ("POST", "a.test", "/p", 200, 2, 100.0, 103.0),
            ("PUT", "a.test", "/c", 200, 2, 101.0, 104.0),
            ("GET", "a.test", "/get", 200, 2, 102.0, 105.0),
        ],
    ),
    "chunked response: hex sizes, extensions, trailers": (
        GET + GET,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"1A;name=value\r\n" + b"z" * 26 + b"\r\n10\r\n" + b"y" * 16 + b"\r\n0\r\nA: 1\r\nB: 2\r\n\r\n" + OK,
        [("GET", "a.test", "/get", 200, 42, 100.0, 102.0), ("GET", "a.test", "/get", 200, 2, 101.0, 103.0)],
    ),
    "HEAD, 204 and 304 have no body whatever their length": (
        b"HEAD /h HTTP/1.1\r\nHost: a.test\r\n\r\n" + GET + GET + GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n" + OK,
        [
            ("HEAD", "a.test", "/h", 200, 0, 100.0, 104.0),
            ("GET", "a.test", "/get", 204, 0, 101.0, 105.0),
            ("GET", "a.test", "/get", 304, 0, 102.0, 106.0),
            ("GET", "a.test", "/get", 200, 2, 103.0, 107.0),
        ],
    ),
    "a 305 and a 205 have their body": (
        GET + GET,
        b"HTTP/1.1 305 Use Proxy\r\nContent-Length: 3\r\n\r\nabc"
        b"HTTP/1.1 205 Reset Content\r\nContent-Length: 1\r\n\r\nx",
        [("GET", "a.test", "/get", 305, 3, 100.0, 102.0), ("GET", "a.test", "/get", 205, 1, 101.0, 103.0)],
    ),
    "interim responses answer nothing": (
        b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nx",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
        b"HTTP/1.1 199 Whatever\r\nContent-Length: 9\r\n\r\n" + OK,
        [("POST", "a.test", "/p", 200, 2, 100.0, 101.0)],
    ),
    "stray CRLF between messages": (
        GET + b"\r\n\r\n" + GET,
        OK + b"\r\n" + OK,
        [("GET", "a.test", "/get", 200, 2, 100.0, 102.0), ("GET", "a.test", "/get", 200, 2, 101.0, 103.0)],
    ),
    "equal Content-Lengths are one length": (
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
        [("GET", "a.test", "/get", 200, 3, 100.0, 101.0)],
    ),
    "two Content-Length lines with one value": (
        GET + GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc" + OK,
        [("GET", "a.test", "/get", 200, 3, 100.0, 102.0), ("GET", "a.test", "/get", 200, 2, 101.0, 103.0)],
    ),
    "a body until close ends at close": (
        GET,
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close",
        [("GET", "a.test", "/get", 200, 11, 100.0, 101.0)],
    ),
    "a body with a transfer coding not chunked ends at close": (
        GET,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped",
        [("GET", "a.test", "/get", 200, 6, 100.0, 101.0)],
    ),
    "a request without an answer is recorded at close, without status": (
        GET + b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
        OK,
        [("GET", "a.test", "/get", 200, 2, 100.0, 102.0), ("GET", "a.test", "/x", None, 0, 101.0, None)],
    ),
    "an answer cut short is recorded at close with what came": (
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        [("GET", "a.test", "/get", 200, 0, 100.0, 101.0)],
    ),
}


@pytest.mark.parametrize("step", [None, 1, 7])
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_each_exchange_is_recorded_whatever_the_segmentation(name, step):
    client, server, expected = CONVERSATIONS[name]
    assert observe(client, server, step)[0] == expected


HOSTS = {
    b"GET / HTTP/1.1\r\nHost: A.Test.:8080\r\n\r\n": ("a.test", "/"),
    b"GET / HTTP/1.1\r\nHost: [2001:DB8::1]:80\r\n\r\n": ("2001:db8::1", "/"),
    b"GET / HTTP/1.1\r\nHost: [2001:db8::1\r\n\r\n": ("2001:db8::1", "/"),
    b"GET / HTTP/1.1\r\nHost:  a.test \r\n\r\n": ("a.test", "/"),
    b"GET / HTTP/1.1\r\nHost: 2001:db8::1\r\n\r\n": ("2001:db8::1", "/"),
    b"GET http://B.test:81/x?y=/z HTTP/1.1\r\n\r\n": ("b.test", "/x?y=/z"),
    b"GET http://b.test HTTP/1.1\r\n\r\n": ("b.test", "/"),
    b"GET http://b.test/x HTTP/1.1\r\nHost: c.test\r\n\r\n": ("c.test", "/x"),
    b"GET http://b.test/x/y?u=http://c.test/z HTTP/1.1\r\n\r\n": ("b.test", "/x/y?u=http://c.test/z"),
    b"GET / HTTP/1.1\r\nHost: [::1]]\r\n\r\n": ("::1", "/"),
    # the authority ends at "?" and "#" as well as "/"; an empty path is "/" (RFC 9112 3.2.4)
    b"GET http://b.test?x=1 HTTP/1.1\r\n\r\n": ("b.test", "/?x=1"),
    b"GET http://b.test:8080?u=/p/q HTTP/1.1\r\n\r\n": ("b.test", "/?u=/p/q"),
    b"GET http://b.test#/p HTTP/1.1\r\n\r\n": ("b.test", "/#/p"),
    b"GET http://b.test?x=1 HTTP/1.1\r\nHost: b.test\r\n\r\n": ("b.test", "/?x=1"),
    b"GET http://b.test?x=1?y=2 HTTP/1.1\r\n\r\n": ("b.test", "/?x=1?y=2"),
    b"GET http://b.test#a#b HTTP/1.1\r\n\r\n": ("b.test", "/#a#b"),
    b"GET http:///p HTTP/1.1\r\nHost: c.test\r\n\r\n": ("c.test", "/p"),
    b"GET http://?x HTTP/1.1\r\nHost: c.test\r\n\r\n": ("c.test", "/?x"),
    b"GET /x HTTP/1.0\r\n\r\n": ("default.test", "/x"),
    b"GET /x HTTP/1.1\r\nHost:\r\n\r\n": ("default.test", "/x"),
}


@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize("request_head", HOSTS)
def test_the_host_comes_from_host_then_the_target_then_the_tunnel(request_head, step):
    recorded, _ = observe(request_head, OK, step)
    assert [(host, path) for _, host, path, *_ in recorded] == [HOSTS[request_head]]


UNANSWERED = [("GET", "a.test", "/get", None, 0, 100.0, None)]
CUT_SHORT = [("GET", "a.test", "/get", 200, 0, 100.0, 101.0)]  # the status came, the body not in full
CHUNKED_200 = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
STOPS = {
    # each response is followed by another one (OK), that is not recorded either
    "not HTTP from upstream": (GET, b"SSH-2.0-OpenSSH\r\n\r\n" + OK, UNANSWERED),
    "a status that is not three digits": (
        GET,
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok" + OK,
        UNANSWERED,
    ),
    "HTTP/2 status line": (GET, b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok" + OK, UNANSWERED),
    "a response nobody asked for": (b"", OK + OK, []),
    "a head over 64 KiB": (GET, b"HTTP/1.1 200 OK\r\nX: " + b"a" * 66000, UNANSWERED),
    "a header line without a colon": (
        GET,
        b"HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\nok",
        UNANSWERED,
    ),
    "a blank before a header's colon": (
        GET,
        b"HTTP/1.1 200 OK\r\nBad : 1\r\nContent-Length: 2\r\n\r\nok",
        UNANSWERED,
    ),
    "a start line of two parts": (GET, b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok" + OK, UNANSWERED),
    "differing Content-Lengths": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok" + OK, CUT_SHORT),
    "a Content-Length that is not a number": (
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        CUT_SHORT,
    ),
    "a chunk size that is not hex": (GET, CHUNKED_200 + b"zz\r\n" + OK, CUT_SHORT),
    "an empty chunk size": (GET, CHUNKED_200 + b";x\r\n" + OK, CUT_SHORT),
    "a chunk line over 4096 bytes": (GET, CHUNKED_200 + b"1;" + b"e" * 4100 + OK, CUT_SHORT),
}


@pytest.mark.parametrize("step", [None, 1, 7])
@pytest.mark.parametrize("name", STOPS)
def test_what_the_observer_cannot_follow_in_a_response_ends_the_records(name, step):
    client, server, expected = STOPS[name]
    recorded, stopped = observe(client, server, step)
    assert recorded == expected
    assert not stopped  # requests are still followed


@pytest.mark.parametrize("step", [None, 1, 7])
def test_after_an_upgrade_nothing_is_observed(step):
    upgrade = b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\r\n"
    recorded, stopped = observe(upgrade, b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi" + OK, step)
    assert recorded == [("GET", "a.test", "/ws", 101, 0, 100.0, 101.0)]
    assert stopped


@pytest.mark.parametrize("step", [None, 1, 7])
def test_after_a_connect_inside_the_tunnel_nothing_is_observed(step):
    connect = (
        b"CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\nContent-Length: 5\r\n\r\n\x16\x03\x01" + GET
    )
    answer = b"HTTP/1.1 200 Connection Established\r\nContent-Length: 9\r\n\r\n\x16\x03\x03" + OK
    recorded, stopped = observe(connect, answer, step)
    assert recorded == [("CONNECT", "b.test", "b.test:443", 200, 0, 100.0, 101.0)]
    assert stopped


@pytest.mark.parametrize("step", [None, 1, 7])
@pytest.mark.parametrize("status", [b"403 Forbidden", b"300 Multiple Choices", b"199 Nope"])
def test_a_refused_connect_inside_the_tunnel_is_an_ordinary_answer(status, step):
    connect = b"CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\n\r\n"
    answer = b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nno"
    if status.startswith(b"1"):  # an interim answer, then the final one
        answer = b"HTTP/1.1 199 Nope\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"
    recorded, stopped = observe(connect + GET, answer + OK, step)  # the request side stopped at CONNECT
    code = 403 if status.startswith(b"1") else int(status[:3])
    assert recorded == [("CONNECT", "b.test", "b.test:443", code, 2, 100.0, 101.0)]
    assert stopped  # and the response side at the answer nobody asked for


def test_a_malformed_request_head_stops_the_observation_of_requests():
    recorded, _ = observe(b"GET /a HTTP/1.1\r\nBad : x\r\n\r\n" + GET, OK + OK, None)
    assert recorded == []


def test_header_values_are_joined_and_names_lower_cased():
    head = parse_head(b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a:  2 \r\nHost: h\r\nX-B: 3")
    assert head.start == ("GET", "/", "HTTP/1.1")
    assert head.headers == [("x-a", "1"), ("x-a", "2"), ("host", "h"), ("x-b", "3")]
    assert (head.get("x-a"), head.get("host"), head.get("x-b"), head.get("x-c")) == ("1, 2", "h", "3", None)


@pytest.mark.parametrize(
    "first, expected",
    [
        (b"GET / HTTP/1.1\r\n", True),
        (b"CONNECT a:1 HTTP/1.1", True),
        (b"OPTIONS * HTTP/1.1", True),
        (b"GET", False),
        (b"get / HTTP/1.1", False),
        (b"GETX / HTTP/1.1", False),
        (b"VERYLONGMETHOD01 / HTTP/1.1", False),
    ],
)
def test_what_looks_like_http(first, expected):
    assert looks_like_http(first) is expected


def test_a_head_of_64_kib_is_followed_and_one_byte_more_is_not():
    """Up to 65536 bytes are kept while the blank line ending a head has not come."""
    for size, answered in ((65536, True), (65537, False)):
        observer = HttpObserver("default.test", clock=lambda: 1.0)
        observer.client_data(GET)
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: "
        head += b"a" * (size - len(head) - 3) + b"\r\n\r"  # all but the last byte of the blank line
        assert len(head) == size
        assert observer.server_data(head) == []
        recorded = observer.server_data(b"\nok")
        assert [(e.status, e.response_bytes) for e in recorded] == ([(200, 2)] if answered else [])


def test_a_chunk_line_of_4096_bytes_is_followed_and_one_byte_more_is_not():
    for size, answered in ((4095, True), (4096, False)):  # the line's CR counts while its LF has not come
        observer = HttpObserver("default.test", clock=lambda: 1.0)
        observer.client_data(GET)
        observer.server_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        line = b"3;" + b"e" * (size - 2)
        observer.server_data(line + b"\r")
        recorded = observer.server_data(b"\nabc\r\n0\r\n\r\n")
        assert [(e.status, e.response_bytes) for e in recorded] == ([(200, 3)] if answered else [])


@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize(
    "codings, chunked",
    [
        (b"gzip, br, chunked", True),
        (b"gzip,chunked", True),
        (b"Chunked ", True),
        (b"chunked, gzip", False),
        (b"gzip", False),
    ],
)
def test_a_response_is_chunked_when_its_last_transfer_coding_is(codings, chunked, step):
    body = b"3;a=1;b=2\r\nabc\r\n0\r\n\r\n"
    recorded, _ = observe(GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + codings + b"\r\n\r\n" + body, step)
    assert [e[3:5] for e in recorded] == [(200, 3 if chunked else len(body))]


@pytest.mark.parametrize("step", [None, 1])
def test_a_head_with_non_ascii_bytes_is_read_line_by_line(step):
    """Bytes over 0x7f keep a head off the fast path: two Transfer-Encoding lines make one list."""
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Note: caf\xe9: 1\r\n"
        b"Transfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n" + OK
    )
    request = b"GET /\xe9 HTTP/1.1\r\nX-Note: caf\xe9\r\nHOST: A.test:80\r\n\r\n" + GET
    recorded, _ = observe(request, answer, step)
    assert [e[:5] for e in recorded] == [
        ("GET", "a.test", "/\xe9", 200, 3),
        ("GET", "a.test", "/get", 200, 2),
    ]
    head = parse_head(b"HTTP/1.1 200 OK\r\nX-Note: caf\xe9: 1\r\nTE: a\r\nte: b")
    assert head.headers == [("x-note", "caf\xe9: 1"), ("te", "a"), ("te", "b")]
    assert head.get("te") == "a, b"


@pytest.mark.parametrize("line", [b":x", b"X-A x", b" X-A: x", b"X-A : x"])
def test_a_header_line_needs_a_name_and_a_colon_right_after_it(line):
    with pytest.raises(ValueError, match="malformed header line"):
        parse_head(b"HTTP/1.1 200 OK\r\nX-Ok: \xe9\r\n" + line)


def test_a_start_line_needs_three_parts():
    with pytest.raises(ValueError, match="malformed start line 'HTTP/1.1'"):
        parse_head(b"HTTP/1.1\r\nX-Ok: \xe9")


def test_a_piece_that_ends_one_head_and_holds_the_next_is_read_head_by_head():
    clock = itertools.count(100)
    observer = HttpObserver("default.test", clock=lambda: float(next(clock)))
    second = b"GET /2 HTTP/1.1\r\nHost: b.test\r\n\r\n"
    observer.client_data(GET[:5])
    observer.client_data(GET[5:] + second)
    answer = OK + b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx"
    recorded = observer.server_data(answer[:5]) + observer.server_data(answer[5:])
    summary = [(e.method, e.host, e.path, e.status, e.response_bytes) for e in recorded]
    assert summary == [("GET", "a.test", "/get", 200, 2), ("GET", "b.test", "/2", 201, 1)]


def test_heads_compare_by_start_line_and_headers():
    plain = parse_head(b"GET / HTTP/1.1\r\nHost: h")
    assert plain == parse_head(b"GET / HTTP/1.1\r\nhost:  h ")
    assert plain != parse_head(b"GET / HTTP/1.1\r\nHost: i")
    assert plain != parse_head(b"GET /x HTTP/1.1\r\nHost: h")
    assert plain != ("GET", "/", "HTTP/1.1")


def test_a_body_arriving_after_its_head_in_a_piece_of_its_own_is_no_request():
    clock = itertools.count(100)
    observer = HttpObserver("default.test", clock=lambda: float(next(clock)))
    observer.client_data(b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 26\r\n\r\n")
    observer.client_data(b"GET /no HTTP/1.1\r\nX: 1\r\n\r\n")
    observer.client_data(GET)
    recorded = observer.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n")
    recorded += observer.server_data(b"HTTP/1.1 200 OK\r\n\r\n" + OK)
    summary = [(e.method, e.path, e.status, e.response_bytes) for e in recorded]
    assert summary == [("POST", "/p", 200, 19), ("GET", "/get", 200, 2)]


CHUNKED_POST = b"POST /c HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "pieces, expected",
    [
        (
            [CHUNKED_POST, b"1A\r\nGET /no HTTP/1.1\r\n\r\nxxxxxx\r\n0\r\n\r\n", GET],
            [("POST", "/c"), ("GET", "/get")],
        ),
        ([b"CONNECT b.test:443 HTTP/1.1\r\n\r\n", b"GET /no HTTP/1.1\r\n\r\n"], [("CONNECT", "b.test:443")]),
        ([GET + b"G", b"ET /b HTTP/1.1\r\nHost: b.test\r\n\r\n"], [("GET", "/get"), ("GET", "/b")]),
        ([b"GE", b"T /a HTTP/1.1\r\nHost: a.test\r\n\r\n"], [("GET", "/a")]),
        ([b"GET /a HTTP/1.1\r\nHost: a.test\r\n", b"\r\n", GET], [("GET", "/a"), ("GET", "/get")]),
    ],
    ids=[
        "chunked-head-alone",
        "connect-head-alone",
        "one-byte-after-a-head",
        "inside-the-method",
        "blank-line-alone",
    ],
)
def test_request_heads_are_found_wherever_the_pieces_end(pieces, expected):
    observer = HttpObserver("default.test", clock=lambda: 1.0)
    for piece in pieces:
        observer.client_data(piece)
    assert [(e.method, e.path) for e in observer.close()] == expected


def test_any_header_of_a_plain_head_is_found_by_name():
    head = parse_head(b"GET / HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nx-a: 2")
    assert (head.get("x-a"), head.get("host"), head.get("x-b")) == ("1, 2", "h", None)


def exchanges(client: list[bytes], server: list[bytes]) -> list[tuple]:
    observer = HttpObserver("default.test", clock=lambda: 1.0)
    for piece in client:
        observer.client_data(piece)
    recorded = []
    for piece in server:
        recorded += observer.server_data(piece)
    recorded += observer.close()
    return [(e.method, e.status, e.response_bytes) for e in recorded]


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_a_bodyless_answer_with_a_length_leaves_the_bytes_after_it_to_the_next_answer(status):
    bodyless = b"HTTP/1.1 " + status + b"\r\nContent-Length: 17\r\n\r\n"
    assert OK.startswith(b"HTTP/1.1 200 OK\r\n")  # 17 bytes
    assert exchanges([GET + GET], [bodyless + OK[:17], OK[17:]]) == [
        ("GET", int(status[:3]), 0),
        ("GET", 200, 2),
    ]


def test_a_connect_answered_2xx_with_a_body_length_is_a_tunnel_all_the_same():
    connect = b"CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\n\r\n"
    answer = b"HTTP/1.1 200 Connection Established\r\nContent-Length: 3\r\n\r\nabc"
    assert exchanges([connect], [answer, OK]) == [("CONNECT", 200, 0)]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", b"cdefghij" + OK],
        [OK + b"H", OK[1:]],
        [OK + OK[:20], OK[20:]],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 80\r\n\r\n" + b"a" * 10, b"a" * 70 + OK],
    ],
    ids=["body-in-two-pieces", "one-byte-of-the-next", "part-of-the-next-head", "an-eighth-of-the-body"],
)
def test_an_answer_ends_where_its_length_says_whatever_the_pieces(pieces):
    first = int(pieces[0].split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert exchanges([GET + GET], pieces) == [("GET", 200, first), ("GET", 200, 2)]


def test_a_response_head_is_read_only_once_its_blank_line_is_there():
    """The first piece ends inside the head, one digit into its Content-Length."""
    head = b"HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 390"
    assert exchanges([GET], [head, b"\r\n\r\n" + b"z" * 390]) == [("GET", 200, 390)]
