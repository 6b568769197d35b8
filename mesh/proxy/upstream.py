"""Connections out of the sidecar: straight to the destination or through the egress gateway."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from mesh.api.proxyconfig import Endpoint
from mesh.api.tunnel import MAX_HEAD, ConnectRequest
from mesh.proxy.stream import Channel, HeadTooLarge, Splice, connect


class UpstreamError(Exception):
    def __init__(self, message: str, via_gateway: bool):
        super().__init__(message)
        self.via_gateway = via_gateway


@dataclass(eq=False)
class Upstream:
    key: tuple[object, ...]
    channel: Channel

    def close(self) -> None:
        self.channel.close()


async def open_direct(host: str, port: int, timeout: float) -> Channel:
    """Connect to ``host`` as resolved here (never to an address the app chose for a name)."""
    try:
        return await asyncio.wait_for(connect(host, port), timeout)
    except TimeoutError:
        raise UpstreamError(f"upstream {host}:{port} did not answer within {timeout:g}s", False) from None
    except OSError as exc:
        raise UpstreamError(f"upstream {host}:{port} unreachable: {_reason(exc)}", False) from None


async def open_tunnel(gateway: Endpoint, request: ConnectRequest, timeout: float) -> Channel:
    """CONNECT through the gateway; connecting *and* the gateway's answer must fit in ``timeout``
    (a gateway that accepts and then hangs counts as unreachable)."""
    channel: Channel | None = None
    try:
        async with asyncio.timeout(timeout):
            channel = await connect(gateway.host, gateway.port)
            channel.write(request.encode())
            head = await channel.read_until(b"\r\n\r\n", MAX_HEAD)
    except (TimeoutError, OSError, HeadTooLarge, asyncio.IncompleteReadError) as exc:
        if channel is not None:
            channel.close()
        raise UpstreamError(f"egress gateway unreachable ({gateway}): {_what(exc, timeout)}", True) from None
    status_line = (head or b"").split(b"\r\n", 1)[0].decode("latin-1")
    if not status_line.startswith(("HTTP/1.1 200", "HTTP/1.0 200")):
        channel.close()
        raise UpstreamError(f"egress gateway refused the tunnel: {status_line or 'connection closed'}", True)
    return channel


def _what(exc: Exception, timeout: float) -> str:
    """What went wrong while opening a tunnel, in words."""
    if isinstance(exc, TimeoutError):
        return f"no tunnel within {timeout:g}s"
    if isinstance(exc, HeadTooLarge):
        return f"answer head larger than {MAX_HEAD} bytes"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "it closed the connection inside its answer"
    return _reason(exc) if isinstance(exc, OSError) else str(exc)


def _reason(exc: OSError) -> str:
    if exc.errno:
        return os.strerror(exc.errno).lower()  # "connection refused", not "Connect call failed (...)"
    return exc.strerror or str(exc)


async def splice(client: Channel, upstream: Channel) -> None:
    """Relay bytes both ways until both directions have ended (or either side is lost)."""
    await Splice(client, upstream).done
