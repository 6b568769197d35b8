"""The keep-alive hot path (``mesh.proxy.fastpath``) behaves exactly as the connection's task.

Each scenario runs twice against the same scripted origin: once as the sidecar runs (requests
after the first served from the protocol callbacks) and once with the callbacks handing every
request to the task (what the sidecar did before the hot path). The bytes the client receives, the
requests the origin receives and the log records (time and client port aside) must be the same.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from mesh.api.proxyconfig import Identity, Mode, Protocol, ProxyConfig, Rule
from mesh.proxy import fastpath
from mesh.proxy.sidecar import Sidecar

ID = Identity("curl", "curl")
BIG = 3 * 1024 * 1024
WARM_UP = b"GET /warm HTTP/1.1\r\nHost: localhost\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request (head, body) as the origin reads it; None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lower = head.lower()
    body = b""
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        if b"expect: 100-continue" in lower:
            return head, b"expect"
        body = await reader.readexactly(length)
    elif b"transfer-encoding: chunked" in lower:
        body = await reader.readuntil(b"0\r\n\r\n")
    return head, body


def answer(head: bytes, body: bytes) -> tuple[bytes, bool]:
    """The origin's answer to a request (by its path), and whether it closes afterwards."""
    path = head.split(b" ")[1].decode()
    echo = f"{path} {len(body)}".encode()
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(echo), echo)
    if path == "/chunked":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", False
    if path == "/until-close":
        return b"HTTP/1.1 200 OK\r\n\r\nall of it", True
    if path == "/close":
        return plain.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1), True
    if path == "/204":
        return b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", False
    if path == "/head":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", False
    if path == "/interim":
        return b"HTTP/1.1 102 Processing\r\n\r\n" + plain, False
    if path == "/extra":
        return plain + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra", False
    if path == "/big":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * BIG, False
    if path == "/bad":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", False
    if path == "/folded":
        return b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok", False
    if path == "/drop":
        return b"", True
    if path == "/split":
        return plain, False
    return plain, False


async def origin(received: list[bytes]):
    async def handle(reader, writer):
        try:
            while (request := await read_request(reader)) is not None:
                head, body = request
                received.append(head + body)
                if body == b"expect":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                    received.append(body)
                data, close = answer(head, body)
                if head.split(b" ")[1] == b"/split":
                    writer.write(data[:10])
                    await writer.drain()
                    await asyncio.sleep(0.02)
                    data = data[10:]
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def slow_only(monkeypatch) -> None:
    """Every request to the task, as before the hot path."""

    def run(self, upstream):
        future = asyncio.get_running_loop().create_future()
        future.set_result(fastpath.Handover(fastpath.Step.REQUEST))
        return future

    monkeypatch.setattr(fastpath.FastPath, "run", run)


async def client(port: int, chunks: list[bytes], slow_reader: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(WARM_UP)
    await reader.readuntil(b"/warm 0")  # the first request is always the task's
    for chunk in chunks:
        if chunk == b"EOF":
            writer.write_eof()
            continue
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.03)
    received = b""
    if slow_reader:
        await asyncio.sleep(0.3)  # the sidecar meets a full socket buffer
    try:
        while data := await asyncio.wait_for(reader.read(65536), 0.3):
            received += data
    except (TimeoutError, ConnectionError):
        pass
    writer.close()
    return received


SCENARIOS = {
    "keep-alive GETs": [
        b"GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "pipelined allowed, denied, allowed": [
        b"GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: denied.test\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    ],
    "denied with a body, then allowed": [
        b"POST /1 HTTP/1.1\r\nHost: denied.test\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    ],
    "denied HEAD": [
        b"HEAD /1 HTTP/1.1\r\nHost: denied.test\r\n\r\n",
        b"GET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "denied, connection close": [b"GET /1 HTTP/1.1\r\nHost: denied.test\r\nConnection: close\r\n\r\n"],
    "whole body": [b"POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"],
    "body in pieces": [b"POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhe", b"llo"],
    "chunked body": [
        b"POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ],
    "bad chunk size": [
        b"POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n"
    ],
    "100-continue": [
        b"PUT /e HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        b"data",
    ],
    "head in pieces": [b"GET /p HTTP/1.1\r\nHo", b"st: localhost\r\n\r\n"],
    "bad request": [b"GET /x HTTP/1.1\r\nHost: localhost\r\nHost: 127.0.0.1\r\n\r\n"],
    "bare LF": [b"GET /x HTTP/1.1\nHost: localhost\r\n\r\n"],
    "client CONNECT": [b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"],
    "end inside a head": [b"GET /x HTTP/1.1\r\nHost: localhost", b"EOF"],
    "half-close after a request": [b"GET /h HTTP/1.1\r\nHost: localhost\r\n\r\n", b"EOF"],
    "client says close": [b"GET /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
    "HTTP/1.0": [b"GET /o HTTP/1.0\r\nHost: localhost\r\n\r\n"],
    "HTTP/1.0 keep-alive": [
        b"GET /o HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "new host": [
        b"GET /n HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /m HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "absolute form": [b"GET http://localhost/abs HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "HEAD": [
        b"HEAD /head HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "chunked response": [
        b"GET /chunked HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "until close": [b"GET /until-close HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "upstream closes": [
        b"GET /close HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "204": [b"GET /204 HTTP/1.1\r\nHost: localhost\r\n\r\n", b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "interim response": [b"GET /interim HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "extra bytes after a response": [
        b"GET /extra HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "big response": [
        b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    "response head in pieces": [b"GET /split HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "bad response": [b"GET /bad HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "folded response header": [b"GET /folded HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "upstream leaves without answering": [b"GET /drop HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    "quotes in the path": [b'GET /a"b\\c?d=%22 HTTP/1.1\r\nHost: localhost\r\n\r\n'],
}


async def run_scenario(chunks: list[bytes], mode: Mode, capsys, slow_reader: bool = False):
    received: list[bytes] = []
    server = await origin(received)
    port = server.sockets[0].getsockname()[1]
    sidecar = Sidecar(
        ID, port=free_port(), host="127.0.0.1", original_destination=lambda _: ("127.0.0.1", port)
    )
    rules = [Rule(Protocol.HTTP, port, hosts=("localhost", "127.0.0.1"), egress="curl/a")]
    await sidecar.apply(ProxyConfig(ID, mode, rules=tuple(rules)).with_version())
    capsys.readouterr()
    try:
        answered = await client(sidecar.port, chunks, slow_reader)
        await asyncio.sleep(0.05)
    finally:
        sidecar.close()
        server.close()
    records = []
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line)
        assert line == json.dumps(record)  # encoded as json.dumps encodes it
        if record["event"] == "listener":
            continue
        for varies in ("time", "client", "port", "destination"):  # ports differ from run to run
            record.pop(varies, None)
        record["reason"] = record["reason"].replace(str(port), "PORT")
        records.append(record)
    return answered, received, records


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("mode", [Mode.POLICY, Mode.PERMISSIVE])
async def test_the_hot_path_serves_as_the_task_does(name, mode, capsys, monkeypatch):
    fast = await run_scenario(SCENARIOS[name], mode, capsys)
    with monkeypatch.context() as patch:
        slow_only(patch)
        slow = await run_scenario(SCENARIOS[name], mode, capsys)
    assert fast[0] == slow[0]  # the client's bytes
    assert fast[1] == slow[1]  # the origin's
    assert fast[2] == slow[2]  # the records
    assert fast[0]  # something was answered


async def test_a_client_that_reads_slowly_gets_every_byte(capsys):
    chunks = [b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\nGET /a HTTP/1.1\r\nHost: localhost\r\n\r\n"]
    answered, _, records = await run_scenario(chunks, Mode.POLICY, capsys, slow_reader=True)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG
    assert answered == head + b"x" * BIG + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n/a 0"
    assert [r["path"] for r in records] == ["/warm", "/big", "/a"]


async def test_keep_alive_requests_after_the_first_do_not_wake_the_task(capsys, monkeypatch):
    steps: list[fastpath.Step] = []
    hand_over = fastpath.FastPath.hand_over

    def counted(self, step, **details):
        steps.append(step)
        hand_over(self, step, **details)

    monkeypatch.setattr(fastpath.FastPath, "hand_over", counted)
    chunks = [b"GET /%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i for i in range(20)]
    chunks.append(b"GET /d HTTP/1.1\r\nHost: denied.test\r\n\r\n")
    answered, _, records = await run_scenario(chunks, Mode.POLICY, capsys)
    assert answered.count(b"HTTP/1.1 200 OK") == 20 and answered.endswith(b"Access denied")
    assert len(records) == 22
    # the first request opened the upstream connection (the task); the client's close ends it
    assert steps == [fastpath.Step.FORWARD, fastpath.Step.REQUEST]


async def test_timeouts_hold_on_the_following_requests(capsys):
    received: list[bytes] = []
    server = await origin(received)
    port = server.sockets[0].getsockname()[1]
    sidecar = Sidecar(
        ID, port=free_port(), host="127.0.0.1", original_destination=lambda _: ("127.0.0.1", port)
    )
    sidecar.idle_timeout = sidecar.head_timeout = 0.3
    await sidecar.apply(ProxyConfig(ID, Mode.PERMISSIVE).with_version())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
        for path in (b"/warm", b"/again"):
            writer.write(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path)
            await reader.readuntil(path + b" 0")
        writer.write(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n")  # and nothing more: 408
        answer = await asyncio.wait_for(reader.read(), 3)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
        for path in (b"/warm", b"/again"):
            writer.write(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path)
            await reader.readuntil(path + b" 0")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # idle: closed
        assert 0.2 < loop.time() - started < 1.5
        writer.close()
    finally:
        sidecar.close()
        server.close()
