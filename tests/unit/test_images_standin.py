"""The stand-in for httpbin.org / httpstat.us, on loopback only."""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

PATH = Path(__file__).resolve().parents[2] / "mesh/images/standin/standin.py"
spec = importlib.util.spec_from_file_location("standin", PATH)
standin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(standin)


@pytest.fixture
async def client():
    async with TestClient(TestServer(standin.make_app(), host="127.0.0.1")) as c:
        yield c


async def test_httpbin_get_echoes_args_and_headers(client):
    resp = await client.get("/get?a=1", headers={"Host": "httpbin.org", "X-Test": "yes"})
    assert resp.status == 200
    body = await resp.json()
    assert body["args"] == {"a": "1"}
    assert body["headers"]["X-Test"] == "yes"
    assert body["origin"] == "127.0.0.1"


async def test_head_get_answers_200_without_body(client):
    resp = await client.head("/get", headers={"Host": "httpbin.org"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await resp.read() == b""


async def test_httpstat_200_is_six_bytes(client):
    resp = await client.get("/200", headers={"Host": "httpstat.us"})
    assert resp.status == 200
    assert await resp.read() == b"200 OK"
    assert resp.headers["Content-Length"] == "6"


@pytest.mark.parametrize("path,status", [("/status/418", 418), ("/503", 503), ("/status/204", 204)])
async def test_status_codes(client, path, status):
    resp = await client.get(path)
    assert resp.status == status


async def test_headers_endpoint(client):
    resp = await client.get("/headers", headers={"X-A": "b"})
    assert (await resp.json())["headers"]["X-A"] == "b"


async def test_unknown_path_is_404(client):
    assert (await client.get("/nope")).status == 404


async def test_https_with_generated_certificate():
    context = standin.self_signed_context()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ctx, server_hostname="httpbin.org"
    )
    cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert cert
    writer.close()
    server.close()
    await server.wait_closed()


async def test_tcp_echo():
    server = await asyncio.start_server(standin.echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 2) == b"ping\n"
    writer.close()
    server.close()
    await server.wait_closed()


async def test_udp_echo_sends_each_datagram_back():
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(standin.UdpEcho, local_addr=("127.0.0.1", 0))
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple) -> None:
            answers.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(Client, remote_addr=server.get_extra_info("sockname"))
    try:
        for payload in (b"ping", b"boundary"):
            client.sendto(payload)
            assert await asyncio.wait_for(answers.get(), 2) == payload
    finally:
        client.close()
        server.close()


def test_main_reports_port_in_use():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = standin.main(
            ["--host", "127.0.0.1", "--http-port", str(port), "--https-port", "0", "--echo-port", "0"]
        )
    assert code == 1


async def test_a_named_standin_says_who_answered_and_an_unnamed_one_does_not(client):
    async with TestClient(TestServer(standin.make_app("httpstat.us"), host="127.0.0.1")) as named:
        for path in ("/get", "/200", "/status/404"):
            resp = await named.get(path, headers={"Host": "httpbin.org"})
            assert resp.headers[standin.IDENTITY_HEADER] == "httpstat.us"
    resp = await client.get("/200")
    assert standin.IDENTITY_HEADER not in resp.headers
