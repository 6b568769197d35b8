"""The exchanges the keep-alive hot path (``mesh.proxy.fastpath``) serves, byte for byte.

After its first request (always the connection task's: it opens the upstream connection), a
keep-alive connection's requests are served from the protocol callbacks. Each test drives the real
sidecar on loopback in front of a scripted destination (tests/wire.py) and asserts what the client
gets back, what the destination receives, the decision records and, where the hot path's whole
point is not to wake the connection's task, where it handed the connection over (``Step``).
Reads end at a known length or at the end of the connection, so each test takes milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from mesh.api.proxyconfig import Mode, Protocol, ProxyConfig, Rule
from mesh.proxy.fastpath import FastPath, Step
from tests.wire import (
    WAIT,
    Connection,
    Destination,
    Script,
    config,
    connect,
    ok,
    read_response,
    read_to_close,
    sidecar_before,
)

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nAccess denied"
FORBIDDEN_HEAD = FORBIDDEN[: -len(b"Access denied")]
HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n"  # a body, not a request
Action = bytes | float | None  # bytes to send, seconds to wait, None: close the connection


def get(path: bytes, host: bytes = b"localhost", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)


def post(path: bytes, body: bytes, host: bytes = b"localhost") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (path, host, len(body), body)


def echo(request: bytes, body_length: int = 0) -> bytes:
    """The default destination's answer to ``request`` (tests/wire.py answer_each)."""
    return ok(request.split(b"\r\n")[0] + b" %d" % body_length)


def replying(replies: dict[bytes, list[Action]]) -> Script:
    """A destination answering the paths in ``replies`` by their actions, any other as answer_each."""

    async def serve(conn: Connection) -> None:
        while True:
            head, body = await conn.request()
            default = [ok(head.split(b"\r\n")[0] + b" %d" % len(body))]
            for action in replies.get(head.split(b" ")[1], default):
                if action is None:
                    return
                if isinstance(action, float):
                    await asyncio.sleep(action)
                else:
                    await conn.send(action)

    return serve


@pytest.fixture
def steps(monkeypatch) -> list[Step]:
    """Where the hot path handed its connection to the task, in order."""
    seen: list[Step] = []
    hand_over = FastPath.hand_over

    def recorded(self, step, **details):
        seen.append(step)
        hand_over(self, step, **details)

    monkeypatch.setattr(FastPath, "hand_over", recorded)
    return seen


async def warmed_up(sidecar) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection whose first request (the task's) is answered: the next are the hot path's."""
    reader, writer = await connect(sidecar)
    writer.write(get(b"/warm"))
    assert await read_response(reader) == echo(get(b"/warm"))
    return reader, writer


def decisions(capsys) -> list[tuple[str, str, str]]:
    """(method, path, decision) of each request's decision record."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [(r.get("method"), r.get("path"), r["decision"]) for r in lines if r["event"] == "decision"]


async def nothing_more(reader: asyncio.StreamReader) -> bool:
    """True when no byte comes for a moment (the connection stays open and quiet)."""
    try:
        return not await asyncio.wait_for(reader.read(1), 0.1)
    except TimeoutError:
        return True


# ---------------------------------------------------------------- requests


async def test_keep_alive_requests_are_served_in_the_callbacks_with_their_bytes_unchanged(steps, capsys):
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        for request, length in (
            (get(b"/1"), 0),
            (post(b"/2", b"hello"), 5),
            (get(b"/3", extra=b"X: y\r\n"), 0),
        ):
            writer.write(request)
            assert await read_response(reader) == echo(request, length)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
    assert destination.received == get(b"/warm") + get(b"/1") + post(b"/2", b"hello") + get(
        b"/3", extra=b"X: y\r\n"
    )
    assert destination.connections == 1
    assert decisions(capsys) == [
        ("GET", "/warm", "allow"), ("GET", "/1", "allow"), ("POST", "/2", "allow"), ("GET", "/3", "allow")
    ]  # fmt: skip
    assert steps == [Step.FORWARD, Step.REQUEST]  # the first request opened the upstream; the end


async def test_pipelined_requests_after_length_bodies_are_each_decided(steps, capsys):
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(
            post(b"/a", HIDDEN)
            + post(b"/denied", b"12345", host=b"evil.test")
            + get(b"/b")
            + get(b"/c", host=b"evil.test")
            + post(b"/d", b"xyz")
        )
        assert await read_response(reader) == echo(b"POST /a HTTP/1.1", len(HIDDEN))
        assert await read_response(reader) == FORBIDDEN
        assert await read_response(reader) == echo(get(b"/b"))
        assert await read_response(reader) == FORBIDDEN
        assert await read_response(reader) == echo(b"POST /d HTTP/1.1", 3)
        assert await nothing_more(reader)
        writer.close()
    assert [head.split(b"\r\n")[0] for head, _ in destination.requests] == [
        b"GET /warm HTTP/1.1", b"POST /a HTTP/1.1", b"GET /b HTTP/1.1", b"POST /d HTTP/1.1"
    ]  # fmt: skip
    assert b"12345" not in destination.received and b"/denied" not in destination.received
    assert decisions(capsys) == [
        ("GET", "/warm", "allow"), ("POST", "/a", "allow"), ("POST", "/denied", "deny"),
        ("GET", "/b", "allow"), ("GET", "/c", "deny"), ("POST", "/d", "allow"),
    ]  # fmt: skip
    assert steps == [Step.FORWARD]


async def test_requests_after_a_denied_one_in_the_same_write(steps, capsys):
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/x", host=b"evil.test"))
        assert await read_response(reader) == FORBIDDEN
        writer.write(get(b"/y", host=b"evil.test") + get(b"/z", host=b"evil.test"))
        assert await read_response(reader) == FORBIDDEN
        assert await read_response(reader) == FORBIDDEN
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: evil.test\r\n\r\n" + get(b"/ok"))
        assert await asyncio.wait_for(reader.readexactly(len(FORBIDDEN_HEAD)), WAIT) == FORBIDDEN_HEAD
        assert await read_response(reader) == echo(get(b"/ok"))
        writer.close()
    assert destination.received == get(b"/warm") + get(b"/ok")
    assert [d[1:] for d in decisions(capsys)] == [
        ("/warm", "allow"), ("/x", "deny"), ("/y", "deny"), ("/z", "deny"), ("/h", "deny"), ("/ok", "allow")
    ]  # fmt: skip
    assert steps == [Step.FORWARD]


async def test_a_denied_request_saying_close_gets_403_then_the_end(steps, capsys):
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/x", host=b"evil.test", extra=b"Connection: close\r\n") + get(b"/after"))
        assert await read_to_close(reader) == FORBIDDEN
    assert destination.received == get(b"/warm")
    assert [d[1:] for d in decisions(capsys)] == [("/warm", "allow"), ("/x", "deny")]
    assert steps == [Step.FORWARD, Step.END]


@pytest.mark.parametrize(
    "first",
    [
        b"GET /p HTTP/1.1\r\nHost: loc",  # a head in pieces
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\nabc",  # a body in pieces
    ],
)
async def test_a_request_in_pieces_is_served_by_the_task(first, steps):
    destination = Destination()
    whole = first + (b"alhost\r\n\r\n" if first.startswith(b"GET") else b"def")
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(first)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(whole[len(first) :] + get(b"/next"))
        assert await read_response(reader) == echo(whole, 6 if b"POST" in whole else 0)
        assert await read_response(reader) == echo(get(b"/next"))
        writer.close()
    assert destination.received == get(b"/warm") + whole + get(b"/next")
    assert steps == [Step.FORWARD, Step.REQUEST]  # the task read the rest, then handed back


async def test_a_chunked_request_and_100_continue_are_the_tasks(steps):
    chunked = (
        b"POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    expecting = b"PUT /e HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"

    async def serve(conn: Connection) -> None:
        while True:
            head, body = await conn.request()
            if b"Expect" in head:
                await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await conn.send(
                echo(head, len(body)) if b"/warm" in head else ok(head.split(b"\r\n")[0] + b" " + body)
            )

    destination = Destination(serve)
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(chunked)
        assert await read_response(reader) == ok(b"POST /c HTTP/1.1 abc")
        writer.write(expecting + b"data")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert await read_response(reader) == ok(b"PUT /e HTTP/1.1 data")
        writer.write(get(b"/n"))
        assert await read_response(reader) == ok(b"GET /n HTTP/1.1 ")
        writer.close()
    assert destination.received == get(b"/warm") + chunked + expecting + b"data" + get(b"/n")
    assert steps == [Step.FORWARD, Step.REQUEST, Step.REQUEST]


@pytest.mark.parametrize(
    "bad",
    [
        get(b"/x", extra=b"Host: other\r\n"),  # two Hosts
        b"GET /x HTTP/1.1\nHost: localhost\r\n\r\n",  # a bare LF
        b"\r\n\r\nGET /x HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
)
async def test_a_bad_request_after_good_ones_gets_400_and_the_end(bad, capsys):
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(bad)
        answer = await read_to_close(reader)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert destination.received == get(b"/warm")
    records = decisions(capsys)
    assert records[1][2] == "deny" and len(records) == 2


async def test_a_head_larger_than_the_limit_is_refused():
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/big", extra=b"X: " + b"a" * (64 * 1024) + b"\r\n"))
        answer = await read_to_close(reader)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert destination.received == get(b"/warm")


# ---------------------------------------------------------------- responses


@pytest.mark.parametrize(
    "request_, response",
    [
        (b"HEAD /h HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
        (get(b"/204"), b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
        (get(b"/304"), b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
    ],
)
async def test_responses_without_a_body_end_at_their_head(request_, response, steps):
    path = request_.split(b" ")[1]
    destination = Destination(replying({path: [response]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(request_)
        assert await asyncio.wait_for(reader.readexactly(len(response)), WAIT) == response
        writer.write(get(b"/after"))
        assert await read_response(reader) == echo(get(b"/after"))
        writer.close()
    assert steps == [Step.FORWARD]


async def test_a_response_split_across_reads_is_passed_on_as_it_comes(steps):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"
    pieces: list[Action] = [head + b"abc", 0.03, b"defg", 0.03, b"hijkl"]
    destination = Destination(replying({b"/split": pieces}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/split"))
        assert await asyncio.wait_for(reader.readexactly(len(head) + 3), WAIT) == head + b"abc"
        assert await asyncio.wait_for(reader.readexactly(4), WAIT) == b"defg"
        assert await asyncio.wait_for(reader.readexactly(5), WAIT) == b"hijkl"
        writer.write(get(b"/after"))
        assert await read_response(reader) == echo(get(b"/after"))
        writer.close()
    assert steps == [Step.FORWARD]


async def test_a_response_head_in_pieces_is_the_tasks(steps):
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    destination = Destination(replying({b"/split": [response[:10], 0.03, response[10:]]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/split"))
        assert await read_response(reader) == response
        writer.write(get(b"/after"))
        assert await read_response(reader) == echo(get(b"/after"))
        writer.close()
    assert steps == [Step.FORWARD, Step.RESPONSE]


@pytest.mark.parametrize("split", [False, True])
async def test_bytes_after_a_response_are_the_next_requests_answer_as_in_the_task(split, steps):
    """What the destination sends beyond a response is kept for the next request, exactly as the
    connection's task does (it reads the next response from the same buffer)."""
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra"
    first = ok(b"first")
    actions: list[Action] = [first[:-2], 0.03, first[-2:] + extra] if split else [first + extra]
    destination = Destination(replying({b"/extra": actions}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/extra"))
        assert await read_response(reader) == first
        writer.write(get(b"/a"))
        assert await read_response(reader) == extra
        writer.write(get(b"/b"))
        assert await read_response(reader) == echo(get(b"/a"))
        writer.close()
    assert steps[:2] == [Step.FORWARD, Step.FORWARD]  # the kept bytes are read by the task


async def test_bytes_the_destination_sends_between_exchanges_are_the_next_answer(steps):
    unasked = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nunasked"
    destination = Destination(replying({b"/late": [ok(b"late"), 0.05, unasked]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/late"))
        assert await read_response(reader) == ok(b"late")
        await asyncio.sleep(0.15)
        assert await nothing_more(reader)
        writer.write(get(b"/a"))
        assert await read_response(reader) == unasked
        writer.close()
    assert steps == [Step.FORWARD, Step.FORWARD]


@pytest.mark.parametrize(
    "path, response",
    [
        (b"/interim", b"HTTP/1.1 102 Processing\r\n\r\n" + ok(b"done")),
        (b"/chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ],
)
async def test_interim_and_chunked_responses_are_relayed_by_the_task(path, response, steps):
    destination = Destination(replying({path: [response]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(path))
        assert await asyncio.wait_for(reader.readexactly(len(response)), WAIT) == response
        writer.write(get(b"/after"))
        assert await read_response(reader) == echo(get(b"/after"))
        writer.close()
    assert steps == [Step.FORWARD, Step.RESPONSE]


async def test_a_response_until_close_is_relayed_to_the_end():
    response = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    destination = Destination(replying({b"/until-close": [response, None]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/until-close"))
        assert await read_to_close(reader) == response


@pytest.mark.parametrize(
    "response, reason",
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            b"differing Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok", b"folded header line"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", b"bad status line"),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"a" * (64 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok",
            b"head larger than",
        ),
    ],
    ids=["two-lengths", "folded", "status", "head-too-large"],
)
async def test_a_bad_response_gets_502_with_the_reason(response, reason, capsys, caplog):
    destination = Destination(replying({b"/bad": [response]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/bad"))
        answer = await read_to_close(reader)
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"bad upstream response: " + reason in answer
    errors = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "upstream_error" in line]
    assert len(errors) == 1 and reason.decode() in errors[0]["reason"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------- keep-alive and the end


@pytest.mark.parametrize(
    "request_, response",
    [
        (get(b"/c", extra=b"Connection: close\r\n"), ok(b"bye")),
        (b"GET /o HTTP/1.0\r\nHost: localhost\r\n\r\n", ok(b"bye")),
        (get(b"/c"), b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"),
        (get(b"/c"), b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye"),
    ],
)
async def test_either_side_saying_close_ends_the_client_connection(request_, response, steps, caplog):
    path = request_.split(b" ")[1]
    destination = Destination(replying({path: [response]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(request_ + get(b"/never"))
        assert await read_to_close(reader) == response
        await asyncio.sleep(0.02)
    assert b"/never" not in destination.received
    assert steps == [Step.FORWARD, Step.END]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_upstream_saying_close_is_closed_and_not_used_again():
    ends: list[bytes] = []

    async def serve(conn: Connection) -> None:
        head, _ = await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
        ends.append(await asyncio.wait_for(conn.rest(), WAIT))  # the sidecar closes its side

    async def first_then_close(conn: Connection) -> None:
        if destination.connections == 1:
            await answer_warm_then(conn, serve)
        else:
            await serve(conn)

    async def answer_warm_then(conn: Connection, then) -> None:
        head, _ = await conn.request()
        await conn.send(echo(head))
        await then(conn)

    destination = Destination(first_then_close)
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/c"))
        assert (
            await read_to_close(reader)
            == b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"
        )
        await asyncio.sleep(0.05)
    assert ends == [b""]


async def test_an_upstream_that_went_away_between_requests_is_replaced(steps, capsys):
    """A destination that closes an idle keep-alive connection (nginx after keepalive_timeout): the
    next request gets a new connection, not a 502 (it did, through the task and the hot path)."""
    destination = Destination(replying({b"/last": [ok(b"last"), None]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/last"))
        assert await read_response(reader) == ok(b"last")
        await asyncio.sleep(0.05)  # the destination's end arrives
        writer.write(get(b"/next"))
        assert await read_response(reader) == echo(get(b"/next"))
        writer.close()
    assert destination.connections == 2
    assert steps == [Step.FORWARD, Step.FORWARD]


def two_hosts(port: int) -> ProxyConfig:
    return config(Mode.POLICY, Rule(Protocol.HTTP, port, hosts=("localhost", "127.0.0.1")))


async def test_a_new_host_gets_its_own_upstream_connection(steps):
    destination = Destination()
    async with sidecar_before(destination, two_hosts) as sidecar:
        reader, writer = await warmed_up(sidecar)
        for host in (b"localhost", b"127.0.0.1", b"127.0.0.1", b"localhost"):
            writer.write(get(b"/h", host=host))
            assert await read_response(reader) == echo(get(b"/h", host=host))
        writer.close()
    assert destination.connections == 3
    assert steps == [Step.FORWARD, Step.FORWARD, Step.FORWARD]


async def test_a_client_that_ends_while_idle_is_let_go(steps):
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/1"))
        assert await read_response(reader) == echo(get(b"/1"))
        writer.write_eof()
        assert await read_to_close(reader) == b""
    assert steps == [Step.FORWARD, Step.REQUEST]


@pytest.mark.parametrize("then", [b"", get(b"/then")])
async def test_a_client_that_ends_after_its_request_gets_the_whole_answer(then, steps):
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + b"abc"
    destination = Destination(replying({b"/slow": [0.05, response, 0.05, b"def"]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/slow") + then)
        writer.write_eof()
        assert await read_to_close(reader) == response + b"def" + (echo(then) if then else b"")
    assert steps == [Step.FORWARD, Step.REQUEST]


async def test_pipelined_requests_wait_for_the_answer_before_them(steps, capsys):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    destination = Destination(replying({b"/h": [0.05, head]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(get(b"/1"))
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(get(b"/2", host=b"evil.test"))
        assert await asyncio.wait_for(reader.readexactly(len(head)), WAIT) == head
        assert await read_response(reader) == echo(get(b"/1"))
        assert await read_response(reader) == FORBIDDEN
        writer.close()
    assert [d[1:] for d in decisions(capsys)] == [
        ("/warm", "allow"),
        ("/h", "allow"),
        ("/1", "allow"),
        ("/2", "deny"),
    ]
    assert steps == [Step.FORWARD]


@pytest.mark.parametrize("cut", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])
async def test_a_destination_that_leaves_mid_exchange_ends_the_connection(cut, capsys, caplog):
    destination = Destination(replying({b"/drop": [cut, None] if cut else [None]}))
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/drop"))
        answer = await read_to_close(reader)
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if cut:
        assert answer == cut
        assert events[-2:] == ["decision", "decision"]  # no error record: the end is quiet
    else:
        assert events[-1] == "upstream_error"
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert b"upstream closed the connection without answering" in answer


# ---------------------------------------------------------------- timeouts and slow clients


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout():
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        sidecar.idle_timeout = 0.2
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/1"))
        assert await read_response(reader) == echo(get(b"/1"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await read_to_close(reader) == b""
        assert 0.1 < loop.time() - started < 1.0


async def test_a_slow_answer_is_not_cut_by_the_idle_timeout(caplog):
    destination = Destination(replying({b"/slow": [0.4, ok(b"slow")]}))
    async with sidecar_before(destination) as sidecar:
        sidecar.idle_timeout = 0.2
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/slow"))
        assert await read_response(reader) == ok(b"slow")
        writer.write(get(b"/1"))
        assert await read_response(reader) == echo(get(b"/1"))
        writer.close()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_that_stops_reading_holds_the_destination_back(steps):
    size = 48 * 1024 * 1024
    sent: list[int] = []
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size

    async def serve(conn: Connection) -> None:
        await conn.request()
        await conn.send(echo(get(b"/warm")))
        await conn.request()
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        chunk = b"x" * (1 << 20)
        await conn.send(head + chunk)  # a head with a part of its body: the client's buffer fills at once
        sent.append(len(chunk))
        for _ in range(size // len(chunk) - 1):
            await conn.send(chunk)
            sent.append(len(chunk))
        await answer_rest(conn)

    async def answer_rest(conn: Connection) -> None:
        head, body = await conn.request()
        await conn.send(echo(head, len(body)))

    destination = Destination(serve)
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        writer.write(get(b"/big"))
        await asyncio.sleep(0.3)
        assert sum(sent) < size // 2  # held back (by the kernels' buffers) while the client reads nothing
        received = await asyncio.wait_for(reader.readexactly(len(head) + size), WAIT)
        assert received == head + b"x" * size
        writer.write(get(b"/after"))
        assert await read_response(reader) == echo(get(b"/after"))
        writer.close()
    assert steps == [Step.FORWARD]


async def test_pipelined_requests_wait_while_the_client_does_not_read(steps):
    """Whole responses, one after the other, to a client that reads nothing for a while: once its
    connection's buffer is full the sidecar forwards no further request until it has drained."""
    count, body = 500, b"y" * (48 * 1024)  # each response fits one loopback segment: whole in one read

    async def serve(conn: Connection) -> None:
        while True:
            head, _ = await conn.request()
            await conn.send(ok(body if b"/warm" not in head else b"GET /warm HTTP/1.1 0"))

    destination = Destination(serve)
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        writer.write(b"".join(get(b"/%d" % i) for i in range(count)))
        await asyncio.sleep(0.3)
        assert len(destination.requests) < count // 2  # held back while the client reads nothing
        answers = await asyncio.wait_for(reader.readexactly(count * len(ok(body))), 10)
        assert answers == ok(body) * count
        writer.write(get(b"/after"))
        assert await read_response(reader) == ok(body)
        writer.close()
    assert len(destination.requests) == count + 2
    assert Step.REQUEST in steps  # handed to the task, which waits for the client to drain


async def test_a_connection_whose_task_was_cancelled_ends_without_an_error(caplog):
    """At shutdown the connections' tasks are cancelled; a keep-alive connection idle in the hot
    path that ends afterwards must not make the callbacks fail (asyncio would log the error)."""
    destination = Destination()
    async with sidecar_before(destination) as sidecar:
        reader, writer = await warmed_up(sidecar)
        writer.write(get(b"/1"))
        assert await read_response(reader) == echo(get(b"/1"))
        tasks = [t for t in asyncio.all_tasks() if "_serve" in repr(t.get_coro())]
        assert len(tasks) == 1
        tasks[0].cancel()
        await asyncio.sleep(0.02)
        writer.close()
        await asyncio.sleep(0.05)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
