"""Passive HTTP observation inside a tunnel: framing, HEAD, keep-alive, pipelining, chunked."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.gateway.httphead import looks_like_http, parse_head, parse_lines
from mesh.gateway.httpstream import HttpObserver

GET = b"GET /get HTTP/1.1\r\nHost: HTTPBin.org:80\r\n\r\n"
HEAD = b"HEAD /status/200 HTTP/1.1\r\nHost: httpstat.us.\r\n\r\n"
OK_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
HEAD_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"  # HEAD: length announced, no body
CHUNKED = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nA: b\r\n\r\n"


def observe(client: bytes, server: bytes, step: int | None = None) -> tuple[list, list]:
    """Feed both directions (optionally in ``step``-byte slices); return (while running, at close)."""
    clock = itertools.count(100)
    obs = HttpObserver("fallback.example", clock=lambda: float(next(clock)))
    obs.client_data(client)
    seen = []
    size = step or len(server) or 1
    for i in range(0, len(server), size):
        seen += obs.server_data(server[i : i + size])
    return seen, obs.close()


def summary(exchanges) -> list[tuple]:
    return [(e.method, e.host, e.path, e.status, e.response_bytes) for e in exchanges]


@pytest.mark.parametrize("step", [None, 1, 7])
def test_keep_alive_requests_complete_in_order_whatever_the_segmentation(step):
    seen, rest = observe(GET + HEAD + GET, OK_JSON + HEAD_ANSWER + CHUNKED, step)
    assert summary(seen) == [
        ("GET", "httpbin.org", "/get", 200, 2),
        ("HEAD", "httpstat.us", "/status/200", 200, 0),
        ("GET", "httpbin.org", "/get", 404, 5),
    ]
    assert rest == []


def test_request_without_answer_is_reported_at_close_without_status():
    seen, rest = observe(GET, b"")
    assert seen == []
    assert summary(rest) == [("GET", "httpbin.org", "/get", None, 0)]


def test_response_delimited_by_close_completes_at_close():
    seen, rest = observe(GET, b"HTTP/1.0 200 OK\r\n\r\nbody until close")
    assert seen == []
    assert summary(rest) == [("GET", "httpbin.org", "/get", 200, 16)]


def test_interim_100_continue_does_not_consume_the_request():
    post = b"POST /post HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
    seen, _ = observe(
        post + GET, b"HTTP/1.1 100 Continue\r\n\r\n" + OK_JSON + b"HTTP/1.1 204 No Content\r\n\r\n"
    )
    assert summary(seen) == [("POST", "a.example", "/post", 200, 2), ("GET", "httpbin.org", "/get", 204, 0)]


def test_absolute_form_target_and_missing_host_header():
    request = b"GET http://Example.COM:8080/a?b=1 HTTP/1.1\r\n\r\n"
    seen, _ = observe(request, OK_JSON)
    assert summary(seen) == [("GET", "example.com", "/a?b=1", 200, 2)]


def test_upgrade_stops_observation_after_101():
    upgrade = b"GET /ws HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    seen, rest = observe(upgrade + b"\x81\x05hello", b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi")
    assert summary(seen) == [("GET", "a.example", "/ws", 101, 0)]
    assert rest == []


def test_garbage_from_upstream_stops_observation_quietly():
    seen, rest = observe(GET, b"SSH-2.0-OpenSSH\r\n\r\n")
    assert seen == []
    assert summary(rest) == [("GET", "httpbin.org", "/get", None, 0)]


@pytest.mark.parametrize(
    "first, expected",
    [(b"GET / HTTP/1.1\r\n", True), (b"HEAD ", True), (b"\x16\x03\x01\x02\x00", False), (b"SSH-2.0", False)],
)
def test_looks_like_http(first, expected):
    assert looks_like_http(first) is expected


_PIECES = st.sampled_from(
    [
        b"GET",
        b" ",
        b"/",
        b"HTTP/1.1",
        b"\r\n",
        b"Host",
        b":",
        b"a",
        b" \t",
        b"\x0b",
        b"\xa0",
        b"\n",
        b"\r",
        b"X-A",
        b"\r\nHost:",
        b"\r\nContent-Length:",
    ]
)


def _head_or_error(parse, data):
    try:
        head = parse(data)
    except ValueError:
        return "malformed"
    looked_up = {name: head.get(name) for name in ("host", "content-length", "transfer-encoding", "x-a")}
    return head.start, head.headers, looked_up


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=16).map(b"".join))
def test_the_fast_head_parser_reads_heads_as_the_line_by_line_one(raw):
    fast = _head_or_error(parse_head, raw)
    assert fast == _head_or_error(lambda data: parse_lines(data.decode("latin-1")), raw)


_REQUESTS = st.sampled_from(
    [
        GET,
        HEAD,
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        b"GET http://b.example/x HTTP/1.1\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"\r\nGET /after-crlf HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /bad HTTP/1.1\r\nHost : a\r\n\r\n",
    ]
)
_RESPONSES = st.sampled_from(
    [
        OK_JSON,
        HEAD_ANSWER,
        CHUNKED,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 2\xb200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
        b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
    ]
)


def _run(conversation: list[tuple[bool, bytes]], shortcuts: bool) -> list[tuple]:
    clock = itertools.count(100)
    obs = HttpObserver("fallback.example", clock=lambda: float(next(clock)))
    if not shortcuts:  # the general path only, as before the shortcuts for whole messages
        obs._whole_request = lambda data: False
        obs._whole_response = lambda data: None
    out = []
    for from_client, data in conversation:
        if from_client:
            obs.client_data(data)
        else:
            out += obs.server_data(data)
    out += obs.close()
    return [(e.method, e.target, e.host, e.started, e.status, e.response_bytes, e.finished) for e in out]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _REQUESTS, _RESPONSES, st.integers(0, 3)), max_size=6))
def test_whole_messages_are_observed_as_the_general_path_observes_them(steps):
    conversation = []
    for both, request, response, cut in steps:
        conversation.append((True, request))
        if both or cut == 0:
            conversation.append((False, response))
        else:  # the response in two pieces
            conversation += [(False, response[: cut * 5]), (False, response[cut * 5 :])]
    assert _run(conversation, shortcuts=True) == _run(conversation, shortcuts=False)
