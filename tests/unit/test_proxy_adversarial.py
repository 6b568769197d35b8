"""An attacker inside the app container against the sidecar (loopback, injected original destination).

Every test names the trick it tries; each must end in a refusal the app can observe (400, 403, 408,
503, a closed connection) and, where it matters, with the destination never seeing the bytes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time

import pytest

from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, Rule
from mesh.proxy import http1
from mesh.proxy.sidecar import Sidecar
from mesh.proxy.tls import NotClientHello, server_name

ID = Identity("curl", "curl")
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(mode: Mode, *rules: Rule, gateway: Endpoint | None = None) -> ProxyConfig:
    return ProxyConfig(ID, mode, rules=rules, gateway=gateway).with_version()


class Origin:
    """A raw destination that records every byte and answers each request head with ``OK``
    (content-length bodies are read; chunked bodies are recorded, never answered)."""

    def __init__(self, echo: bool = False):
        self.received = bytearray()
        self.connections = 0
        self.echo = echo

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.echo:
                while data := await reader.read(65536):
                    self.received += data
                    writer.write(data)
                return
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.received += head
                length = [
                    int(h.split(b":")[1])
                    for h in head.lower().split(b"\r\n")
                    if h.startswith(b"content-length:")
                ]
                if b"transfer-encoding" in head.lower():
                    while data := await reader.read(65536):
                        self.received += data
                    return
                if length:
                    self.received += await reader.readexactly(length[0])
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def origin():
    o = Origin()
    o.port = await o.start()
    yield o
    o.server.close()


@pytest.fixture
async def sidecar(origin):
    s = Sidecar(
        ID, port=free_port(), host="127.0.0.1", original_destination=lambda _: ("127.0.0.1", origin.port)
    )
    yield s
    s.close()


async def policy(sidecar, origin, protocol: Protocol = Protocol.HTTP, hosts=("localhost",)) -> None:
    await sidecar.apply(config(Mode.POLICY, Rule(protocol, origin.port, hosts=hosts)))


async def exchange(sidecar, data: bytes, timeout: float = 3.0) -> bytes:
    """Send ``data``, half-close, and return everything the sidecar answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(data)
    writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


CHUNKED_POST = b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "size_line",
    [b"0x5", b"+5", b"-5", b"1_0", b"5\n", b"5 ", b" 5", b"1" + b"0" * 16, b"5;a\x00b", b"5;\x0bx"],
)
async def test_lax_chunk_size_lines_get_400_and_never_reach_the_destination(sidecar, origin, size_line):
    await policy(sidecar, origin)
    answer = await exchange(sidecar, CHUNKED_POST + size_line + b"\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert size_line not in origin.received


async def test_chunk_extensions_and_well_formed_trailers_pass(sidecar, origin):
    await policy(sidecar, origin)
    body = b"5;name=value\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(CHUNKED_POST + body)
    await asyncio.sleep(0.3)
    writer.close()
    assert origin.received.endswith(body)


async def test_malformed_trailer_gets_400(sidecar, origin):
    await policy(sidecar, origin)
    answer = await exchange(sidecar, CHUNKED_POST + b"5\r\nhello\r\n0\r\nHost : evil.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"evil.test" not in origin.received


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n",  # NUL in a value
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\x0bb\r\n\r\n",  # other control character
        b"GET /a\x01b HTTP/1.1\r\nHost: localhost\r\n\r\n",  # control character in the target
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: localhost\r\n\r\n",  # raw non-ASCII target
        b"GET / HTTP/1.1\r\nHost: localhost\r\n folded: x\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\nHost: localhost\n\n",  # bare LF line endings
        b"GET / HTTP/1.1\r\nHost : localhost\r\n\r\n",  # space before the colon
        b"GET http://evil.test/ HTTP/1.1\r\nHost: localhost\r\n\r\n",  # absolute URI vs Host
        b"GET http://localhost@evil.test/ HTTP/1.1\r\nHost: localhost\r\n\r\n",  # userinfo
        b"GET / HTTP/1.1\r\nHost: localhost:80@evil.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: local%68ost\r\n\r\n",  # percent-encoding
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",  # empty Host
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.test\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n",  # no tunnels from the app
    ],
)
async def test_ambiguous_or_malformed_requests_get_400_and_never_reach_the_destination(
    sidecar, origin, request_bytes
):
    await policy(sidecar, origin)
    answer = await exchange(sidecar, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert origin.connections == 0


@pytest.mark.parametrize("host", [b"LOCALHOST", b"localhost.", b"LocalHost.:80"])
async def test_host_variants_of_an_allowed_name_are_allowed(sidecar, origin, host):
    await policy(sidecar, origin)
    answer = await exchange(sidecar, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert answer == OK


async def test_http10_without_host_is_denied_in_policy_mode(sidecar, origin):
    await policy(sidecar, origin)
    assert await exchange(sidecar, b"GET / HTTP/1.0\r\n\r\n") == http1.FORBIDDEN
    assert origin.connections == 0


async def test_pipelined_requests_are_each_decided(sidecar, origin):
    await policy(sidecar, origin)
    pipeline = (
        b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n"
        b"GET /two HTTP/1.1\r\nHost: evil.test\r\n\r\n"
        b"GET /three HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert await exchange(sidecar, pipeline) == OK + http1.FORBIDDEN + OK
    assert b"/one" in origin.received and b"/three" in origin.received
    assert b"evil.test" not in origin.received


async def test_a_request_hidden_in_a_body_is_only_body(sidecar, origin):
    await policy(sidecar, origin)
    hidden = b"GET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n"
    post = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(hidden)
    get = b"GET /after HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert await exchange(sidecar, post + hidden + get) == OK + OK  # no 403: the body was not parsed
    assert origin.received.count(hidden) == 1


async def test_slowloris_head_gets_408_within_the_head_timeout(sidecar, origin):
    await policy(sidecar, origin)
    sidecar.head_timeout = 0.3
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    started = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n")

    async def trickle():
        for i in range(30):
            writer.write(b"X-%d: y\r\n" % i)
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(reader.read(), 3)
    finally:
        trickling.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert time.monotonic() - started < 1.5
    assert origin.connections == 0


async def test_idle_keep_alive_connection_is_closed(sidecar, origin):
    await policy(sidecar, origin)
    sidecar.idle_timeout = 0.3
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(len(OK)), 3) == OK
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


async def test_gateway_that_accepts_then_hangs_gives_503_within_the_timeout(sidecar):
    async def silent(reader, writer):
        await reader.read()  # accept, read the CONNECT, never answer

    hanging = await asyncio.start_server(silent, "127.0.0.1", 0)
    gateway = Endpoint("127.0.0.1", hanging.sockets[0].getsockname()[1])
    sidecar.gateway_timeout = 0.5
    await sidecar.apply(config(Mode.PERMISSIVE, gateway=gateway))
    started = time.monotonic()
    answer = await exchange(sidecar, b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert time.monotonic() - started < 1.0
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    hanging.close()


# ---------------------------------------------------------------- config changes on open connections


@pytest.fixture
async def echo():
    o = Origin(echo=True)
    o.port = await o.start()
    yield o
    o.server.close()


async def open_tcp_relay(echo) -> tuple[Sidecar, asyncio.StreamReader, asyncio.StreamWriter]:
    sidecar = Sidecar(
        ID, port=free_port(), host="127.0.0.1", original_destination=lambda _: ("127.0.0.1", echo.port)
    )
    await sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(b"hello\n")
    assert await asyncio.wait_for(reader.readexactly(6), 3) == b"hello\n"
    return sidecar, reader, writer


@pytest.mark.parametrize("mode", [Mode.DISABLED, Mode.POLICY])
async def test_open_relay_is_closed_when_a_new_config_denies_it(echo, mode):
    sidecar, reader, writer = await open_tcp_relay(echo)
    try:
        await sidecar.apply(config(mode))
        assert await asyncio.wait_for(reader.read(), 2) == b""
    finally:
        writer.close()
        sidecar.close()


async def test_open_relay_stays_when_the_new_config_still_allows_it(echo):
    sidecar, reader, writer = await open_tcp_relay(echo)
    try:
        await sidecar.apply(config(Mode.POLICY, Rule(Protocol.TCP, echo.port, cidrs=("127.0.0.0/8",))))
        writer.write(b"again\n")
        assert await asyncio.wait_for(reader.readexactly(6), 2) == b"again\n"
    finally:
        writer.close()
        sidecar.close()


async def test_open_http_connection_is_redecided_after_permissive_turns_to_policy(sidecar, origin):
    await sidecar.apply(config(Mode.PERMISSIVE))
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(len(OK)), 3) == OK
    await policy(sidecar, origin)
    writer.write(b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(len(http1.FORBIDDEN)), 3) == http1.FORBIDDEN
    writer.close()


# ---------------------------------------------------------------- TLS


def client_hello(*names: bytes, extensions: int = 1) -> bytes:
    """A minimal TLS 1.2 ClientHello whose server_name extension lists ``names`` (repeated
    ``extensions`` times)."""
    entries = b"".join(b"\x00" + len(n).to_bytes(2, "big") + n for n in names)
    sni_body = len(entries).to_bytes(2, "big") + entries
    sni = (b"\x00\x00" + len(sni_body).to_bytes(2, "big") + sni_body) * extensions
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += len(sni).to_bytes(2, "big") + sni
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def test_single_sni_is_read():
    assert server_name(client_hello(b"localhost")[9:]) == "localhost"


@pytest.mark.parametrize(
    "hello",
    [client_hello(b"localhost", b"evil.test"), client_hello(b"localhost", extensions=2)],
    ids=["two-host-names", "two-server-name-extensions"],
)
async def test_ambiguous_sni_closes_without_reaching_the_destination(sidecar, origin, hello):
    await policy(sidecar, origin, Protocol.HTTPS)
    with pytest.raises(NotClientHello):
        server_name(hello[9:])
    assert await exchange(sidecar, hello) == b""
    assert origin.connections == 0


async def test_real_client_hello_with_uppercase_trailing_dot_sni_is_allowed(echo):
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = context.wrap_bio(incoming, outgoing, server_hostname="LocalHost.")
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    hello = outgoing.read()
    sidecar = Sidecar(
        ID, port=free_port(), host="127.0.0.1", original_destination=lambda _: ("127.0.0.1", echo.port)
    )
    await sidecar.apply(config(Mode.POLICY, Rule(Protocol.HTTPS, echo.port, hosts=("localhost",))))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
        writer.write(hello)
        assert await asyncio.wait_for(reader.readexactly(len(hello)), 3) == hello  # relayed unchanged
        writer.close()
    finally:
        sidecar.close()


@pytest.mark.parametrize(
    "payload", [b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"\x16\x03\x01\x00\x04\x01\xff\xff\xff"]
)
async def test_non_tls_or_oversized_hello_on_an_https_port_is_closed(sidecar, origin, payload):
    await policy(sidecar, origin, Protocol.HTTPS)
    assert await exchange(sidecar, payload) == b""
    assert origin.connections == 0


async def test_denied_upgrade_request_does_not_switch_protocols(sidecar, origin):
    await policy(sidecar, origin)
    upgrade = b"GET /ws HTTP/1.1\r\nHost: evil.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    after = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert await exchange(sidecar, upgrade + after) == http1.FORBIDDEN + OK  # still parsed as HTTP
    assert b"evil.test" not in origin.received


# ---------------------------------------------------------------- inputs found by fuzzing (issue 10.4)


def decision_records(out: str) -> list[dict]:
    return [r for r in map(json.loads, out.splitlines()) if r.get("event") == "decision"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: a:\xb2\r\n\r\n",  # a non-ASCII "digit" as the port
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: \xb2\r\n\r\n",
        b"GET http://[x/ HTTP/1.1\r\nHost: localhost\r\n\r\n",  # unterminated IPv6 literal
    ],
    ids=["host-port", "content-length", "ipv6-target"],
)
async def test_fuzz_found_inputs_get_400_and_a_decision_record(sidecar, origin, capsys, request_bytes):
    await policy(sidecar, origin)
    answer = await exchange(sidecar, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert origin.connections == 0
    records = decision_records(capsys.readouterr().out)
    assert [(r["decision"], r["reason"][:12]) for r in records] == [("deny", "bad request:")]


async def test_gateway_refusing_at_once_says_so_not_that_it_timed_out(sidecar):
    sidecar.gateway_timeout = 5.0
    await sidecar.apply(config(Mode.PERMISSIVE, gateway=Endpoint("127.0.0.1", free_port())))
    started = time.monotonic()
    answer = await exchange(sidecar, b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert time.monotonic() - started < 1.0
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert b"egress gateway unreachable" in body and b"connection refused" in body.lower()
    assert b"within" not in body
