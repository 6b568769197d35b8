"""Connections out of the sidecar: straight to the destination or through the egress gateway."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from mesh.api.proxyconfig import Endpoint
from mesh.gateway.tunnel import MAX_HEAD, ConnectRequest
from mesh.proxy.stream import HeadTooLarge, Inbound


class UpstreamError(Exception):
    def __init__(self, message: str, via_gateway: bool):
        super().__init__(message)
        self.via_gateway = via_gateway


@dataclass(eq=False)
class Upstream:
    key: tuple[object, ...]
    src: Inbound
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


async def open_direct(host: str, port: int, timeout: float) -> tuple[Inbound, asyncio.StreamWriter]:
    """Connect to ``host`` as resolved here (never to an address the app chose for a name)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        raise UpstreamError(f"upstream {host}:{port} did not answer within {timeout:g}s", False) from None
    except OSError as exc:
        raise UpstreamError(f"upstream {host}:{port} unreachable: {exc.strerror or exc}", False) from None
    return Inbound(reader), writer


async def open_tunnel(
    gateway: Endpoint, request: ConnectRequest, timeout: float
) -> tuple[Inbound, asyncio.StreamWriter]:
    """CONNECT through the gateway; connecting *and* the gateway's answer must fit in ``timeout``
    (a gateway that accepts and then hangs counts as unreachable)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
            src = Inbound(reader)
            writer.write(request.encode())
            head = await src.read_until(b"\r\n\r\n", MAX_HEAD)
    except (TimeoutError, OSError, HeadTooLarge, asyncio.IncompleteReadError) as exc:
        if writer is not None:
            writer.close()
        raise UpstreamError(f"egress gateway unreachable ({gateway}): {_what(exc, timeout)}", True) from None
    status_line = (head or b"").split(b"\r\n", 1)[0].decode("latin-1")
    if not status_line.startswith(("HTTP/1.1 200", "HTTP/1.0 200")):
        writer.close()
        raise UpstreamError(f"egress gateway refused the tunnel: {status_line or 'connection closed'}", True)
    return src, writer


def _what(exc: Exception, timeout: float) -> str:
    """What went wrong while opening a tunnel, in words."""
    if isinstance(exc, TimeoutError):
        return f"no tunnel within {timeout:g}s"
    if isinstance(exc, HeadTooLarge):
        return f"answer head larger than {MAX_HEAD} bytes"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "it closed the connection inside its answer"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # "connection refused", not "Connect call failed (...)"
    return str(exc)


async def pipe(src: Inbound, dst: asyncio.StreamWriter, other: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close ``dst``; on an error close both sides."""
    try:
        while data := await src.read_some():
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (OSError, RuntimeError):
        dst.close()
        other.close()


async def splice(
    client_src: Inbound, client: asyncio.StreamWriter, up_src: Inbound, up: asyncio.StreamWriter
) -> None:
    await asyncio.gather(pipe(client_src, up, client), pipe(up_src, client, up))
