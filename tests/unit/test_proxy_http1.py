import pytest

from mesh.proxy import http1
from mesh.proxy.http1 import BadMessage, Framing, parse_request, parse_response
from mesh.proxy.stream import Channel


def req(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_forbidden_is_byte_exact():
    assert http1.FORBIDDEN == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nAccess denied"
    )


@pytest.mark.parametrize(
    "raw, host",
    [
        (req("GET /get HTTP/1.1", "Host: HTTPBin.org."), "httpbin.org"),
        (req("GET /get HTTP/1.1", "Host: httpbin.org:8080"), "httpbin.org"),
        (req("GET http://httpbin.org/get HTTP/1.1", "Host: httpbin.org"), "httpbin.org"),
        (req("GET http://Example.com:81/x HTTP/1.1"), "example.com"),
        (req("GET / HTTP/1.1", "Host: [2001:DB8::1]:80"), "2001:db8::1"),
        (req("GET / HTTP/1.0"), None),
    ],
)
def test_request_host_is_normalised(raw, host):
    assert parse_request(raw).host == host


@pytest.mark.parametrize(
    "raw, message",
    [
        (req("GET / HTTP/1.1", "Host: a.com", "Host: b.com"), "more than one Host"),
        (req("POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Transfer-Encoding: chunked"), "both"),
        (req("POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Content-Length: 4"), "differing"),
        (req("POST / HTTP/1.1", "Host: a", "Content-Length: 3, 4"), "differing"),
        (req("POST / HTTP/1.1", "Host: a", "Content-Length: -1"), "bad Content-Length"),
        (req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, gzip"), "chunked"),
        (req("GET / HTTP/1.1"), "without Host"),
        (req("GET /  HTTP/1.1", "Host: a"), "bad request line"),
        (req("GET / HTTP/2.0", "Host: a"), "bad request line"),
        (req("GET / HTTP/1.1", "Host: a", " folded"), "folded"),
        (req("GET / HTTP/1.1", "Host : a"), "malformed header"),
        (req("GET http://a.com/ HTTP/1.1", "Host: b.com"), "disagrees"),
        (req("GET / HTTP/1.1", "Host: bad_host!"), "not a valid host"),
        (req("CONNECT a.com:443 HTTP/1.1", "Host: a.com:443"), "CONNECT"),
    ],
)
def test_ambiguous_requests_are_refused(raw, message):
    with pytest.raises(BadMessage, match=message):
        parse_request(raw)


def test_duplicate_equal_content_length_is_accepted():
    r = parse_request(req("POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Content-Length: 3"))
    assert (r.framing, r.length) == (Framing.LENGTH, 3)


def test_keep_alive_rules():
    assert parse_request(req("GET / HTTP/1.1", "Host: a")).keep_alive
    assert not parse_request(req("GET / HTTP/1.1", "Host: a", "Connection: close")).keep_alive
    assert not parse_request(req("GET / HTTP/1.0")).keep_alive
    assert parse_request(req("GET / HTTP/1.0", "Connection: keep-alive")).keep_alive


@pytest.mark.parametrize(
    "raw, method, framing",
    [
        (req("HTTP/1.1 200 OK", "Content-Length: 6"), "HEAD", Framing.NONE),
        (req("HTTP/1.1 200 OK", "Content-Length: 6"), "GET", Framing.LENGTH),
        (req("HTTP/1.1 204 No Content"), "GET", Framing.NONE),
        (req("HTTP/1.1 100 Continue"), "POST", Framing.NONE),
        (req("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), "GET", Framing.CHUNKED),
        (req("HTTP/1.1 200 OK"), "GET", Framing.UNTIL_CLOSE),
    ],
)
def test_response_framing(raw, method, framing):
    assert parse_response(raw, method).framing == framing


def _inbound(*pieces: bytes) -> Channel:
    channel = Channel()
    for piece in pieces:
        channel.data_received(piece)
    channel.eof_received()
    return channel


async def test_head_larger_than_64k_is_refused():
    src = _inbound(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    with pytest.raises(BadMessage, match="larger than"):
        await http1.read_head(src)


class _Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


async def test_chunked_body_is_relayed_exactly_and_stops_at_its_end():
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
    src = _inbound(body[:7], body[7:20], body[20:] + b"GET /next")
    sink = _Sink()
    await http1.relay_body(src, sink, Framing.CHUNKED, 0)  # type: ignore[arg-type]
    assert bytes(sink.data) == body
    assert await src.read_some() == b"GET /next"


async def test_length_body_stops_at_its_length():
    src = _inbound(b"abc", b"defGET")
    sink = _Sink()
    await http1.relay_body(src, sink, Framing.LENGTH, 6)  # type: ignore[arg-type]
    assert bytes(sink.data) == b"abcdef"


def test_origin_form_target_with_a_url_in_its_query_is_a_plain_path():
    r = parse_request(req("GET /redirect?to=http://evil.test/ HTTP/1.1", "Host: a.test"))
    assert (r.host, r.target) == ("a.test", "/redirect?to=http://evil.test/")


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\n\r\nHost: a\r\n\r\n",  # bare LF ending the request line
        b"GET / HTTP/1.1\r\nHost\n: a\r\n\r\n",  # bare LF inside a header name
    ],
)
def test_bare_lf_anywhere_in_a_request_head_is_refused(raw):
    with pytest.raises(BadMessage):
        parse_request(raw)


def test_status_code_must_be_ascii_digits():
    with pytest.raises(BadMessage, match="bad status line"):
        parse_response("HTTP/1.1 ²00 OK\r\n\r\n".encode("latin-1"), "GET")
