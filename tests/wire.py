"""The real sidecar on loopback in front of a scripted destination, for tests that assert bytes on
the wire: what reaches the destination and what the client gets back.

Only the sidecar's public API is used (``Sidecar(...)``, ``apply``, ``close``), with the original
destination injected instead of read from netfilter, so these tests hold whatever parser or I/O
layer the sidecar uses inside.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from mesh.api.proxyconfig import Identity, Mode, Protocol, ProxyConfig, Rule
from mesh.proxy.sidecar import Sidecar

ID = Identity("curl", "curl")
WAIT = 1.5  # seconds a test waits for an answer (or for a close) before it counts as a hang
BIG = 1 << 20  # stream limit for reading heads near the 64 KiB limit

Script = Callable[["Connection"], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(mode: Mode, *rules: Rule) -> ProxyConfig:
    return ProxyConfig(ID, mode, rules=rules).with_version()


def allow_localhost(port: int) -> ProxyConfig:
    """Policy mode: HTTP to ``localhost`` on the destination's port, nothing else."""
    return config(Mode.POLICY, Rule(Protocol.HTTP, port, hosts=("localhost",)))


def permissive(port: int) -> ProxyConfig:
    return config(Mode.PERMISSIVE)


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def ok(text: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(text), text)


class Connection:
    """One connection at the destination, as its script sees it. Every byte read is recorded in
    the destination's ``received``, every request parsed in its ``requests``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, destination: Destination):
        self.reader = reader
        self.writer = writer
        self.destination = destination

    async def until(self, separator: bytes) -> bytes:
        data = await self.reader.readuntil(separator)
        self.destination.received += data
        return data

    async def exactly(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.destination.received += data
        return data

    async def some(self) -> bytes:
        """What has arrived (at most 64 KiB); b"" at the end."""
        data = await self.reader.read(65536)
        self.destination.received += data
        return data

    async def rest(self) -> bytes:
        data = await self.reader.read()
        self.destination.received += data
        return data

    async def request(self) -> tuple[bytes, bytes]:
        """One request as a plain HTTP/1.1 server reads it: its head and its decoded body."""
        head = await self.until(b"\r\n\r\n")
        if b"chunked" in (header(head, b"transfer-encoding") or b"").lower():
            body = b""
            while size := int((await self.until(b"\r\n")).split(b";")[0], 16):
                body += (await self.exactly(size + 2))[:-2]
            while await self.until(b"\r\n") != b"\r\n":
                pass  # trailers
        else:
            body = await self.exactly(int((header(head, b"content-length") or b"0").split(b",")[0]))
        self.destination.requests.append((head, body))
        return head, body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


async def answer_each(conn: Connection) -> None:
    """The default destination: answer every request with 200 and ``<request line> <body length>``."""
    while True:
        head, body = await conn.request()
        await conn.send(ok(head.split(b"\r\n")[0] + b" %d" % len(body)))


class Destination:
    """A raw server that records what arrives and serves each connection with ``script``."""

    def __init__(self, script: Script = answer_each):
        self.script = script
        self.received = bytearray()
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=BIG)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(Connection(reader, writer, self))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # the sidecar went away, or sent something a plain server cannot read
        finally:
            writer.close()


@asynccontextmanager
async def sidecar_before(
    destination: Destination, make_config: Callable[[int], ProxyConfig] = allow_localhost
) -> AsyncIterator[Sidecar]:
    """A sidecar whose every client connection was (as if) redirected from ``destination``, with
    the config ``make_config(destination port)``."""
    port = await destination.start()
    sidecar = Sidecar(
        ID, port=free_port(), host="127.0.0.1", original_destination=lambda _sock: ("127.0.0.1", port)
    )
    await sidecar.apply(make_config(port))
    try:
        yield sidecar
    finally:
        sidecar.close()
        destination.server.close()


async def connect(sidecar: Sidecar) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", sidecar.port, limit=BIG)


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One response with a Content-Length body (or none), as bytes."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    length = int(header(head, b"content-length") or 0)
    return head + await asyncio.wait_for(reader.readexactly(length), WAIT)


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    """Everything until the sidecar closes the connection (a hang fails the test)."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT)
    except ConnectionResetError:
        return b"<reset>"
