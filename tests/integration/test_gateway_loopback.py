"""The egress gateway on loopback, with a local aiohttp server as the destination."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest
from aiohttp import web

from mesh.api import accesslog
from mesh.api.tunnel import ConnectRequest
from mesh.gateway import server as gateway_server
from mesh.gateway.server import Gateway


@pytest.fixture
async def upstream():
    async def get(request: web.Request) -> web.Response:
        return web.json_response({"url": str(request.rel_url)})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"part one, ")
        await response.write(b"part two")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/get", get)
    app.router.add_get("/chunked", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]
    await runner.cleanup()


@pytest.fixture
async def gateway():
    records: list[dict] = []
    gw = Gateway(connect_timeout=0.5, sink=records.append)
    server = await gw.start("127.0.0.1", 0)
    gw.port = server.sockets[0].getsockname()[1]
    gw.records = records
    yield gw
    server.close()
    await gw.close()


async def open_tunnel(gw, host: str, port: int, protocol: str = "http"):
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(ConnectRequest(host, port, source="curl/curl", protocol=protocol).encode())
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    return reader, writer, status


async def read_response(reader: asyncio.StreamReader, head_only: bool = False) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = b"" if head_only else await reader.readexactly(length)
    return head, body


async def wait_for_records(gw, count: int) -> list[dict]:
    for _ in range(100):
        if len(gw.records) >= count:
            break
        await asyncio.sleep(0.02)
    return gw.records


async def test_head_request_logged_field_by_field(gateway, upstream):
    before = time.time()
    reader, writer, status = await open_tunnel(gateway, "localhost", upstream)
    assert status == b"HTTP/1.1 200 Connection Established\r\n\r\n"
    client_port = writer.get_extra_info("sockname")[1]
    writer.write(b"HEAD /get HTTP/1.1\r\nHost: LocalHost.:%d\r\nUser-Agent: curl/8\r\n\r\n" % upstream)
    head, _ = await read_response(reader, head_only=True)
    assert head.startswith(b"HTTP/1.1 200 OK")
    writer.close()
    request, connection = await wait_for_records(gateway, 2)

    assert list(request)[:7] == list(accesslog.REQUEST_FIELDS)
    assert accesslog.validate(request) == "request"
    assert request["source_address"] == "127.0.0.1"
    assert request["source_port"] == client_port
    assert (request["host"], request["path"], request["method"]) == ("localhost", "/get", "HEAD")
    assert request["status"] == 200
    assert request["source_identity"] == "curl/curl"
    assert request["request_time"] >= accesslog.iso_time(before)

    assert accesslog.validate(connection) == "connection"
    assert connection["id"] == request["connection_id"]
    assert (connection["source_address"], connection["source_port"]) == ("127.0.0.1", client_port)
    assert (connection["destination_address"], connection["destination_port"]) == ("127.0.0.1", upstream)
    assert connection["start_time"] <= request["request_time"] <= connection["end_time"]
    assert "serverNames" not in connection
    assert "localhost" not in json.dumps(connection)  # `grep HOST` shows the request records only


async def test_two_requests_in_one_tunnel(gateway, upstream):
    reader, writer, _ = await open_tunnel(gateway, "127.0.0.1", upstream)
    writer.write(b"GET /get?n=1 HTTP/1.1\r\nHost: httpbin.org\r\n\r\n")
    _, body = await read_response(reader)
    assert json.loads(body) == {"url": "/get?n=1"}
    writer.write(b"GET /chunked HTTP/1.1\r\nHost: httpbin.org\r\n\r\n")
    chunked = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 2)
    assert b"part one, " in chunked and b"part two" in chunked
    writer.write(b"HEAD /get HTTP/1.1\r\nHost: httpbin.org\r\n\r\n")
    await read_response(reader, head_only=True)
    writer.close()
    records = await wait_for_records(gateway, 4)
    requests, connections = records[:3], records[3:]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("GET", "/get?n=1", 200),
        ("GET", "/chunked", 200),
        ("HEAD", "/get", 200),
    ]
    assert requests[1]["response_bytes"] == len(b"part one, part two")
    assert len({r["connection_id"] for r in requests}) == 1
    assert [c["id"] for c in connections] == [requests[0]["connection_id"]]
    assert connections[0]["bytes_down"] > 0 and connections[0]["bytes_up"] > 0


@pytest.mark.parametrize(
    "head, status",
    [
        (b"GET http://httpbin.org/get HTTP/1.1\r\nHost: httpbin.org\r\n\r\n", b"405"),
        (b"CONNECT httpbin.org HTTP/1.1\r\n\r\n", b"400"),
        (b"HELLO\r\n\r\n", b"400"),
    ],
)
async def test_anything_but_connect_gets_4xx(gateway, head, status):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(head)
    answer = await asyncio.wait_for(reader.read(), 2)
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert gateway.records == []


async def test_unreachable_upstream_gets_502_quickly(gateway):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    started = time.monotonic()
    reader, writer, status = await open_tunnel(gateway, "127.0.0.1", closed_port)
    assert status.startswith(b"HTTP/1.1 502 Bad Gateway")
    assert time.monotonic() - started < 1.0
    (record,) = await wait_for_records(gateway, 1)
    assert record["destination_address"] is None and "connection refused" in record["error"]


async def test_unresolvable_host_gets_502(gateway):
    _, _, status = await open_tunnel(gateway, "no-such-host.invalid", 80)
    assert status.startswith(b"HTTP/1.1 502 Bad Gateway")


async def test_upstream_that_never_answers_gets_504():
    # A listener whose accept queue is full drops further SYNs, so connecting hangs.
    gw = Gateway(connect_timeout=0.3, sink=lambda r: None)
    server = await gw.start("127.0.0.1", 0)
    gw.port = server.sockets[0].getsockname()[1]
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(stuck.getsockname())
            fillers.append(s)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        _, _, status = await open_tunnel(gw, "127.0.0.1", stuck.getsockname()[1])
        assert status.startswith(b"HTTP/1.1 504 Gateway Timeout")
        assert time.monotonic() - started < 1.5
    finally:
        for s in [*fillers, stuck]:
            s.close()
        server.close()
        await gw.close()


async def test_tls_tunnel_records_server_name(gateway):
    received = asyncio.get_running_loop().create_future()

    async def sink_server(reader, writer):
        received.set_result(await reader.read(4096))
        writer.close()

    server = await asyncio.start_server(sink_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="httpbin.org")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    reader, writer, _ = await open_tunnel(gateway, "127.0.0.1", port, protocol="https")
    writer.write(hello)
    assert await asyncio.wait_for(received, 2) == hello  # relayed unchanged
    await asyncio.wait_for(reader.read(), 2)
    writer.close()
    server.close()
    (record,) = await wait_for_records(gateway, 1)
    assert record["serverNames"] == ["httpbin.org"]
    assert list(record)[7] == "serverNames"


async def test_client_vanishing_mid_tunnel_is_logged_and_gateway_keeps_serving(gateway, upstream):
    reader, writer, _ = await open_tunnel(gateway, "127.0.0.1", upstream)
    writer.write(b"GET /get HTTP/1.1\r\nHost: a.example\r\n")  # head never finished
    await asyncio.sleep(0.05)
    writer.transport.abort()
    records = await wait_for_records(gateway, 1)
    assert records[0]["id"] and "error" not in records[0]
    reader, writer, status = await open_tunnel(gateway, "127.0.0.1", upstream)
    assert status.startswith(b"HTTP/1.1 200")
    writer.close()


def test_cli_writes_flushed_json_lines_on_stdout(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    upstream = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "mesh.gateway", "run", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = upstream.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
        upstream_port = int(banner.split(" port ")[1].split()[0])
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(ConnectRequest("127.0.0.1", upstream_port, protocol="http").encode())
            s.sendall(b"HEAD /get HTTP/1.1\r\nHost: httpbin.org\r\n\r\n")
            line = gateway.stdout.readline()  # written while the tunnel is still open
        record = json.loads(line)
        assert accesslog.validate(record) == "request"
        assert (record["host"], record["path"], record["method"]) == ("httpbin.org", "/get", "HEAD")
    finally:
        gateway.terminate()
        upstream.terminate()
        gateway.wait(5)
        upstream.wait(5)
    assert gateway.returncode == 0
    assert "Traceback" not in gateway.stderr.read()


def test_cli_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mesh.gateway", "run", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- what the gateway refuses


async def raw_connect(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    try:
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


@pytest.fixture
async def public_gateway():
    """A gateway listening on every address, as in a cluster: loopback destinations are refused."""
    records: list[dict] = []
    gw = Gateway(connect_timeout=0.5, sink=records.append)
    server = await gw.start("0.0.0.0", 0)
    gw.port = server.sockets[0].getsockname()[1]
    gw.records = records
    yield gw
    server.close()
    await gw.close()


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1:{upstream}",
        "localhost:{upstream}",
        "[::1]:{upstream}",
        "127.0.0.1:{gateway}",
        "0.0.0.0:{upstream}",
        "169.254.169.254:80",
    ],
)
async def test_gateway_in_a_cluster_refuses_itself_loopback_and_link_local(
    public_gateway, upstream, target, monkeypatch
):
    real_connect = gateway_server.connect

    async def loopback_only(host, port):  # a regression must not send a packet elsewhere
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ConnectionRefusedError(111, "test: only loopback may be dialled")
        return await real_connect(host, port)

    monkeypatch.setattr(gateway_server, "connect", loopback_only)
    target = target.format(upstream=upstream, gateway=public_gateway.port)
    answer = await raw_connect(
        public_gateway.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert public_gateway.records[-1]["destination_address"] is None


@pytest.mark.parametrize(
    "target, reason",
    [
        ("[fd00:ec2::254]:80", b"cloud metadata address"),  # AWS instance metadata over IPv6
        ("[fd00:ec2::23]:80", b"cloud metadata address"),  # AWS EKS Pod Identity agent over IPv6
        ("100.100.100.200:80", b"cloud metadata address"),  # Alibaba Cloud
        ("192.0.0.192:80", b"cloud metadata address"),  # Oracle Cloud, legacy
        ("168.63.129.16:32526", b"cloud metadata address"),  # Azure WireServer
        ("[64:ff9b::a9fe:a9fe]:80", b"link-local address"),  # 169.254.169.254 through NAT64
        ("[64:ff9b::6464:64c8]:80", b"cloud metadata address"),  # 100.100.100.200 through NAT64
        ("metadata.test:80", b"cloud metadata address"),  # a name resolving to two of them
    ],
)
async def test_gateway_refuses_cloud_metadata_addresses_without_dialling(
    public_gateway, target, reason, monkeypatch
):
    dialled = []

    async def recorded(host, port):
        dialled.append(host)
        raise ConnectionRefusedError(111, "test: nothing may be dialled")

    real_resolve = gateway_server.resolve

    async def resolve(host, port):
        if host == "metadata.test":
            return ["fd00:ec2::254", "100.100.100.200"]
        return await real_resolve(host, port)

    monkeypatch.setattr(gateway_server, "connect", recorded)
    monkeypatch.setattr(gateway_server, "resolve", resolve)
    answer = await raw_connect(
        public_gateway.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(b": " + reason + b"\n")
    assert dialled == []
    assert public_gateway.records[-1]["destination_address"] is None


async def test_gateway_on_loopback_still_refuses_itself(gateway, upstream):
    own = f"127.0.0.1:{gateway.port}"
    assert (await raw_connect(gateway.port, f"CONNECT {own} HTTP/1.1\r\n\r\n".encode())).startswith(
        b"HTTP/1.1 403 Forbidden\r\n"
    )
    _, _, status = await open_tunnel(gateway, "127.0.0.1", upstream)
    assert status.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT evil\x00.test:80 HTTP/1.1\r\n\r\n",
        b"CONNECT evil.test/x:80 HTTP/1.1\r\n\r\n",
        b"CONNECT a@evil.test:80 HTTP/1.1\r\n\r\n",
        b"CONNECT evil.test:80 HTTP/1.1\r\nX-Egress-Mesh-Source: curl/curl\nX-Injected: 1\r\n\r\n",
        b"CONNECT evil.test:80 HTTP/1.1\r\nX-Egress-Mesh-Source: curl\x0b/curl\r\n\r\n",
    ],
)
async def test_gateway_refuses_control_characters_and_odd_targets_with_400(gateway, head):
    assert (await raw_connect(gateway.port, head)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert gateway.records == []
