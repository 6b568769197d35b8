"""The sidecar on loopback, with the original destination injected instead of read from netfilter."""

import asyncio
import json
import socket
import time

import pytest
from aiohttp import web

from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, Rule
from mesh.api.tunnel import ESTABLISHED, ConnectRequest
from mesh.proxy import http1
from mesh.proxy.sidecar import Sidecar

ID = Identity("curl", "curl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_origin(address: str, port: int, name: str) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        info = {"server": name, "path": request.path, "host": request.host, "body": body.decode()}
        return web.json_response(info)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner


@pytest.fixture
async def origins():
    port = free_port()
    a = await start_origin("127.0.0.1", port, "A")
    b = await start_origin("127.0.0.2", port, "B")
    yield port
    await a.cleanup()
    await b.cleanup()


class Harness:
    def __init__(self, port: int):
        self.destination = ("127.0.0.1", port)
        self.sidecar = Sidecar(ID, port=free_port(), host="127.0.0.1", original_destination=self._dst)

    def _dst(self, _sock):
        return self.destination

    async def connect(self):
        return await asyncio.open_connection("127.0.0.1", self.sidecar.port)


@pytest.fixture
async def harness(origins):
    h = Harness(origins)
    yield h
    h.sidecar.close()


def config(mode: Mode, *rules: Rule, gateway: Endpoint | None = None) -> ProxyConfig:
    return ProxyConfig(ID, mode, rules=rules, gateway=gateway).with_version()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
    )
    return head, await reader.readexactly(length)


async def test_listener_follows_the_mode(harness):
    with pytest.raises(ConnectionRefusedError):
        await harness.connect()
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    _, writer = await harness.connect()
    writer.close()
    await harness.sidecar.apply(config(Mode.DISABLED))
    with pytest.raises(ConnectionRefusedError):
        await harness.connect()


async def test_policy_denies_with_exact_403_and_keeps_the_connection(harness, origins):
    rule = Rule(Protocol.HTTP, origins, hosts=("localhost",))
    await harness.sidecar.apply(config(Mode.POLICY, rule))
    reader, writer = await harness.connect()
    writer.write(b"GET /200 HTTP/1.1\r\nHost: httpstat.us\r\n\r\n")
    assert await reader.readexactly(len(http1.FORBIDDEN)) == http1.FORBIDDEN
    writer.write(b"GET /get HTTP/1.1\r\nHost: LOCALHOST.\r\n\r\n")
    head, body = await read_response(reader)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["path"] == "/get"
    writer.close()


async def test_denied_head_gets_the_403_head_without_body(harness, origins):
    await harness.sidecar.apply(config(Mode.POLICY, Rule(Protocol.HTTP, origins, hosts=("localhost",))))
    reader, writer = await harness.connect()
    writer.write(b"HEAD /200 HTTP/1.1\r\nHost: httpstat.us\r\n\r\n")
    writer.write(b"GET /200 HTTP/1.1\r\nHost: httpstat.us\r\n\r\n")
    expected = http1.FORBIDDEN[:-13] + http1.FORBIDDEN
    assert await reader.readexactly(len(expected)) == expected
    writer.close()


async def test_spoofed_host_goes_to_the_name_not_the_dialled_address(harness, origins):
    await harness.sidecar.apply(config(Mode.POLICY, Rule(Protocol.HTTP, origins, hosts=("localhost",))))
    harness.destination = ("127.0.0.2", origins)  # the app dialled server B ...
    reader, writer = await harness.connect()
    writer.write(f"GET /get HTTP/1.1\r\nHost: localhost:{origins}\r\n\r\n".encode())  # ... claiming A's name
    _, body = await read_response(reader)
    assert json.loads(body)["server"] == "A"
    writer.close()


async def test_request_bodies_are_forwarded(harness, origins):
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await harness.connect()
    writer.write(b"POST /a HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\n\r\nhello")
    _, body = await read_response(reader)
    assert json.loads(body)["body"] == "hello"
    writer.write(
        b"POST /b HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    _, body = await read_response(reader)
    assert json.loads(body) | {"server": "A"} == {
        "server": "A",
        "path": "/b",
        "host": "x.test",
        "body": "abc",
    }
    writer.close()


async def test_ambiguous_request_gets_400_and_close(harness):
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await harness.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n")
    data = await reader.read()
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"more than one Host" in data
    writer.close()


async def test_policy_closes_unknown_tcp(harness, origins):
    await harness.sidecar.apply(config(Mode.POLICY, Rule(Protocol.TCP, origins, cidrs=("10.0.0.0/8",))))
    reader, writer = await harness.connect()
    writer.write(b"\x00\x01binary")
    try:
        assert await reader.read() == b""
    except ConnectionResetError:
        pass  # closed with the client's bytes unread: the kernel resets
    writer.close()


async def test_tcp_cidr_rule_relays(harness, origins):
    await harness.sidecar.apply(config(Mode.POLICY, Rule(Protocol.TCP, origins, cidrs=("127.0.0.0/8",))))
    reader, writer = await harness.connect()
    writer.write(b"GET /raw HTTP/1.0\r\n\r\n")
    data = await reader.read()
    assert data.startswith(b"HTTP/1.0 200") and b'"/raw"' in data
    writer.close()


async def fake_gateway(seen: list[ConnectRequest]) -> asyncio.Server:
    async def handle(reader, writer):
        request = ConnectRequest.decode(await reader.readuntil(b"\r\n\r\n"))
        seen.append(request)
        up_reader, up_writer = await asyncio.open_connection(request.host, request.port)
        writer.write(ESTABLISHED)

        async def pump(src, dst):
            while data := await src.read(65536):
                dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_gateway_gets_one_tunnel_per_host_and_never_sees_denied_requests(harness, origins):
    seen: list[ConnectRequest] = []
    gw = await fake_gateway(seen)
    gateway = Endpoint("127.0.0.1", gw.sockets[0].getsockname()[1])
    rule = Rule(Protocol.HTTP, origins, hosts=("localhost", "127.0.0.1"))
    await harness.sidecar.apply(config(Mode.POLICY, rule, gateway=gateway))
    reader, writer = await harness.connect()
    for host in ("localhost", "localhost", "denied.test", "127.0.0.1"):
        writer.write(f"HEAD /get HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if host == "denied.test":
            assert head == http1.forbidden("HEAD")
        else:
            assert head.startswith(b"HTTP/1.1 200")
    assert [(r.host, r.port, r.source, r.protocol) for r in seen] == [
        ("localhost", origins, "curl/curl", "http"),
        ("127.0.0.1", origins, "curl/curl", "http"),
    ]
    writer.close()
    gw.close()


async def test_gateway_down_gives_503_within_the_timeout(harness):
    harness.sidecar.gateway_timeout = 0.5
    await harness.sidecar.apply(config(Mode.PERMISSIVE, gateway=Endpoint("127.0.0.1", free_port())))
    reader, writer = await harness.connect()
    started = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
    data = await reader.read()
    assert time.monotonic() - started < 0.5
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"egress gateway unreachable" in data
    writer.close()


async def raw_origin(script):
    """An origin speaking raw bytes: ``script(reader, writer)`` per connection."""

    async def handle(reader, writer):
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_chunked_response_and_interim_100_continue_are_relayed(harness):
    async def script(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"expect: 100-continue" in head.lower()
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert await reader.readexactly(4) == b"data"
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(0.05)
        writer.write(b"2\r\nde\r\n0\r\n\r\n")
        await reader.read()

    server, port = await raw_origin(script)
    harness.destination = ("127.0.0.1", port)
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await harness.connect()
    writer.write(b"PUT /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"data")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert await reader.readuntil(b"0\r\n\r\n") == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    writer.close()
    server.close()


async def test_response_without_length_is_relayed_until_close(harness):
    async def script(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")

    server, port = await raw_origin(script)
    harness.destination = ("127.0.0.1", port)
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await harness.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b"HTTP/1.1 200 OK\r\n\r\nall of it"
    writer.close()
    server.close()


async def test_upstream_down_gives_502(harness):
    harness.destination = ("127.0.0.1", free_port())
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await harness.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    writer.close()


async def test_connection_straight_to_the_listener_is_refused(harness, capsys):
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    harness.destination = ("127.0.0.1", harness.sidecar.listen_port)  # what SO_ORIGINAL_DST says then
    reader, writer = await harness.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        pass  # closed with the request unread
    assert "connection was not redirected" in capsys.readouterr().out
    writer.close()


async def test_client_leaving_mid_body_releases_the_upstream(harness):
    closed = asyncio.Event()

    async def script(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # the body never completes; wait for the sidecar to hang up
        closed.set()

    server, port = await raw_origin(script)
    harness.destination = ("127.0.0.1", port)
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    _, writer = await harness.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\nonly part")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.wait_for(closed.wait(), 5)
    server.close()


async def test_permissive_relays_a_server_first_protocol_after_the_sniff_timeout(harness):
    async def script(reader, writer):
        writer.write(b"220 banner\r\n")
        writer.write((await reader.readline()).upper())
        await writer.drain()

    server, port = await raw_origin(script)
    harness.destination = ("127.0.0.1", port)
    await harness.sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await harness.connect()
    assert await asyncio.wait_for(reader.readline(), 5) == b"220 banner\r\n"
    writer.write(b"quit\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"QUIT\n"
    writer.close()
    server.close()


async def test_tunnel_refused_by_the_gateway_gives_503_with_its_answer(harness):
    async def refuse(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    gw, port = await raw_origin(refuse)
    await harness.sidecar.apply(config(Mode.PERMISSIVE, gateway=Endpoint("127.0.0.1", port)))
    reader, writer = await harness.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"egress gateway refused the tunnel: HTTP/1.1 502 Bad Gateway" in data
    writer.close()
    gw.close()
