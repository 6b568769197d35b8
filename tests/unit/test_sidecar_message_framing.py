"""Where each HTTP message ends, as the sidecar sees it on the wire (issue 14, items 1-3, 5, 10).

A proxy that puts a message boundary somewhere else than the client or the server does either
forwards a request without deciding it (smuggling past the policy) or desynchronises the
connection. Every test drives the real sidecar over loopback and asserts the bytes the
destination receives and the bytes the client gets back.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.wire import (
    WAIT,
    Connection,
    Destination,
    connect,
    ok,
    permissive,
    read_response,
    read_to_close,
    sidecar_before,
)

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nAccess denied"
CHUNKED_POST = b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
GET_AFTER = b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n"
KIB64 = 64 * 1024


def request_lines(destination: Destination) -> list[bytes]:
    return [head.split(b"\r\n")[0] for head, _ in destination.requests]


# ---------------------------------------------------------------- request bodies and pipelining


async def test_request_pipelined_after_a_length_body_is_decided_on_its_own():
    """Item 1: the bytes after a Content-Length body are the next request, parsed and decided,
    even when they arrive in the same segment as the body."""
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(
            b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /secret HTTP/1.1\r\nHost: evil.test\r\n\r\n" + GET_AFTER
        )
        assert await read_response(reader) == ok(b"POST /form HTTP/1.1 5")
        assert await read_response(reader) == FORBIDDEN
        assert await read_response(reader) == ok(b"GET /after HTTP/1.1 0")
        writer.close()
    assert request_lines(destination) == [b"POST /form HTTP/1.1", b"GET /after HTTP/1.1"]
    assert destination.requests[0][1] == b"hello"
    assert b"evil.test" not in destination.received


async def test_length_body_arriving_in_pieces_ends_where_its_length_says():
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhel")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"lo")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"world" + b"GET /secret HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        assert await read_response(reader) == ok(b"POST /form HTTP/1.1 10")
        assert await read_response(reader) == FORBIDDEN
        writer.close()
    assert destination.requests == [(destination.requests[0][0], b"helloworld")]
    assert b"evil.test" not in destination.received


@pytest.mark.parametrize(
    "sizes",
    [(0x10, 0x1A, 0x100), (0xFFF,)],
    ids=["16-26-256", "4095"],
)
@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower-hex", "upper-hex"])
async def test_chunk_sizes_of_several_hex_digits_frame_the_body(sizes, case):
    """Item 2: chunk sizes are hexadecimal with any number of digits; a wrong base desyncs the
    connection, so the request after the body must still arrive as a request of its own."""
    chunks = [bytes([ord("a") + i]) * size for i, size in enumerate(sizes)]
    body = b"".join(case(f"{len(c):x}").encode() + b"\r\n" + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(CHUNKED_POST + body + GET_AFTER)
        assert await read_response(reader) == ok(b"POST /upload HTTP/1.1 %d" % sum(sizes))
        assert await read_response(reader) == ok(b"GET /after HTTP/1.1 0")
        writer.close()
    assert destination.requests[0][1] == b"".join(chunks)
    assert request_lines(destination) == [b"POST /upload HTTP/1.1", b"GET /after HTTP/1.1"]
    assert CHUNKED_POST + body in destination.received  # relayed byte for byte


async def test_chunked_response_with_multi_digit_sizes_is_relayed_and_the_next_one_follows():
    first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n" + b"z" * 26 + b"\r\n"
    first += b"100\r\n" + b"y" * 256 + b"\r\n0\r\nX-Sum: 282\r\n\r\n"

    async def script(conn: Connection) -> None:
        await conn.request()
        await conn.send(first)
        await conn.request()
        await conn.send(ok(b"second"))
        await conn.rest()

    async with sidecar_before(Destination(script), permissive) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(len(first)), WAIT) == first
        writer.write(b"GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert await read_response(reader) == ok(b"second")
        writer.close()


async def test_chunk_longer_than_its_size_gets_400_and_no_complete_request_arrives():
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(CHUNKED_POST + b"5\r\nhelloEXTRA\r\n0\r\n\r\n")
        answer = await read_to_close(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert destination.requests == []
    assert b"EXTRA" not in destination.received


async def test_denied_request_bodies_are_skipped_and_the_connection_goes_on():
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(
            b"POST /x HTTP/1.1\r\nHost: evil.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"10\r\nGET / HTTP/1.1\r\n\r\n0\r\n\r\n"
            b"POST /y HTTP/1.1\r\nHost: evil.test\r\nContent-Length: 7\r\n\r\nGET / H" + GET_AFTER
        )
        assert await read_response(reader) == FORBIDDEN
        assert await read_response(reader) == FORBIDDEN
        assert await read_response(reader) == ok(b"GET /after HTTP/1.1 0")
        writer.close()
    assert request_lines(destination) == [b"GET /after HTTP/1.1"]


async def test_denied_request_expecting_100_continue_gets_403_at_once_and_a_close():
    """The body was never sent (the client waits for 100 Continue): answer, and close rather
    than wait for a body that will not come."""
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(
            b"PUT /x HTTP/1.1\r\nHost: evil.test\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await read_to_close(reader) == FORBIDDEN
        writer.close()
    assert destination.connections == 0


# ---------------------------------------------------------------- responses without a body


@pytest.mark.parametrize(
    "method, status_line",
    [
        (b"HEAD", b"HTTP/1.1 200 OK"),
        (b"GET", b"HTTP/1.1 304 Not Modified"),
        (b"GET", b"HTTP/1.1 204 No Content"),
    ],
)
async def test_responses_without_a_body_end_at_their_head_despite_content_length(method, status_line):
    """Item 3: a HEAD answer, a 304 and a 204 have no body whatever their Content-Length says;
    waiting for one would hang the connection (the next response is the next message)."""
    head = status_line + b"\r\nContent-Length: 50\r\nETag: x\r\n\r\n"

    async def script(conn: Connection) -> None:
        await conn.request()
        await conn.send(head)
        await conn.request()
        await conn.send(ok(b"next"))
        await conn.rest()

    async with sidecar_before(Destination(script), permissive) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(method + b" /a HTTP/1.1\r\nHost: a.test\r\n\r\nGET /b HTTP/1.1\r\nHost: a.test\r\n\r\n")
        expected = head + ok(b"next")
        assert await asyncio.wait_for(reader.readexactly(len(expected)), WAIT) == expected
        writer.close()


# ---------------------------------------------------------------- keep-alive and close


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: Keep-Alive, Close\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    ],
    ids=["close", "close-token", "http10", "not-chunked-coding", "no-length"],
)
async def test_an_upstream_that_closes_ends_the_clients_keep_alive(response):
    """Item 5: when the upstream ends the connection after its response, the client gets the whole
    response and then a close, not a connection that hangs or answers the next request with
    garbage."""

    async def script(conn: Connection) -> None:
        await conn.request()
        await conn.send(response)

    destination = Destination(script)
    async with sidecar_before(destination, permissive) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert await read_to_close(reader) == response
        writer.close()
    assert destination.connections == 1


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ],
    ids=["http11", "http10-keep-alive", "empty", "chunked"],
)
async def test_a_kept_alive_upstream_carries_the_next_request(response):
    async def script(conn: Connection) -> None:
        while True:
            await conn.request()
            await conn.send(response)

    destination = Destination(script)
    async with sidecar_before(destination, permissive) as sidecar:
        reader, writer = await connect(sidecar)
        for path in (b"/one", b"/two"):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(len(response)), WAIT) == response
        writer.close()
    assert destination.connections == 1
    assert request_lines(destination) == [b"GET /one HTTP/1.1", b"GET /two HTTP/1.1"]


@pytest.mark.parametrize(
    "request_bytes, kept",
    [
        (b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", True),
    ],
    ids=["http10", "http11-close", "http10-keep-alive", "http11"],
)
@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "denied"])
async def test_the_clients_own_keep_alive_choice_is_kept(request_bytes, kept, allowed):
    if not allowed:
        request_bytes = request_bytes.replace(b"localhost", b"evil.test")
    async with sidecar_before(Destination()) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(request_bytes)
        answer = ok(request_bytes.split(b"\r\n")[0] + b" 0") if allowed else FORBIDDEN
        if kept:
            assert await read_response(reader) == answer
            writer.write(GET_AFTER)
            assert await read_response(reader) == ok(b"GET /after HTTP/1.1 0")
        else:
            assert await read_to_close(reader) == answer
        writer.close()


# ---------------------------------------------------------------- limits at their boundary (item 10)


def head_of(total: int) -> bytes:
    """A request head of exactly ``total`` bytes, empty line included."""
    start = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: "
    return start + b"p" * (total - len(start) - 4) + b"\r\n\r\n"


async def test_a_head_of_64_kib_passes():
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(head_of(KIB64))
        assert await read_response(reader) == ok(b"GET / HTTP/1.1 0")
        writer.close()
    assert destination.received == head_of(KIB64)


async def test_a_head_over_64_kib_gets_400_and_never_reaches_the_destination():
    """64 KiB plus the empty line is the most any reading of "64 KiB head" allows."""
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(head_of(KIB64 + 5))
        answer = await read_to_close(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert destination.connections == 0


@pytest.mark.parametrize("digits, passes", [(15, True), (16, False)])
async def test_chunk_sizes_have_at_most_15_hex_digits(digits, passes):
    size_line = b"5".rjust(digits, b"0")
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(CHUNKED_POST + size_line + b"\r\nhello\r\n0\r\n\r\n")
        if passes:
            assert await read_response(reader) == ok(b"POST /upload HTTP/1.1 5")
        else:
            assert (await read_to_close(reader)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        writer.close()
    assert (size_line in destination.received) is passes


def trailers_of(total: int) -> bytes:
    """Trailer lines and the closing empty line, ``total`` bytes in all (CRLFs included)."""
    lines, left, i = [], total - 2, 0
    while left:
        size = min(1000, left) if left - min(1000, left) >= 10 or left <= 1000 else left - 10
        name = b"X-T%d: " % i
        lines.append(name + b"t" * (size - len(name) - 2) + b"\r\n")
        left -= size
        i += 1
    return b"".join(lines) + b"\r\n"


@pytest.mark.parametrize("total, passes", [(KIB64, True), (KIB64 + 1, False)])
async def test_trailers_are_limited_to_64_kib_in_all(total, passes):
    trailers = trailers_of(total)
    assert len(trailers) == total
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(CHUNKED_POST + b"5\r\nhello\r\n0\r\n" + trailers)
        if passes:
            assert await read_response(reader) == ok(b"POST /upload HTTP/1.1 5")
        else:
            assert (await read_to_close(reader)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        writer.close()
    assert bool(destination.requests) is passes


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n",
    ],
    ids=["length", "before-a-chunk-line", "before-the-trailers", "inside-the-trailers"],
)
async def test_a_response_cut_short_by_the_upstream_ends_the_connection_quietly(response, capsys):
    """The client gets what came and then a close (it can tell the body is short); the sidecar logs
    no error: an upstream going away is not a proxy failure."""

    async def script(conn: Connection) -> None:
        await conn.request()
        await conn.send(response)

    async with sidecar_before(Destination(script), permissive) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert await read_to_close(reader) == response
        writer.close()
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines() if line]
    assert events == ["config", "listener", "decision"]


@pytest.mark.parametrize(
    "body",
    [b"abc", b"3\r\nabc\r\n", b"3\r\nabc\r\n0\r\n", b"3\r\nabc\r\n0\r\nX-T: 1\r\n"],
    ids=["length", "before-a-chunk-line", "before-the-trailers", "inside-the-trailers"],
)
async def test_a_request_body_cut_short_by_the_client_ends_the_connection_quietly(body, capsys):
    framing = b"Content-Length: 10" if body == b"abc" else b"Transfer-Encoding: chunked"
    destination = Destination()
    async with sidecar_before(destination, permissive) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(b"POST / HTTP/1.1\r\nHost: a.test\r\n" + framing + b"\r\n\r\n" + body)
        writer.write_eof()
        answer = await read_to_close(reader)
        writer.close()
    assert destination.requests == []
    assert answer in (b"", b"<reset>") or answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines() if line]
    assert "connection_error" not in events
