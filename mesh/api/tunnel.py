"""The tunnel: the contract between a sidecar and the egress gateway.

A sidecar opens one TCP connection to the gateway (``proxyconfig.GATEWAY_PORT``, 1080) per client
connection and sends::

    CONNECT httpbin.org:80 HTTP/1.1\r\n
    Host: httpbin.org:80\r\n
    X-Egress-Mesh-Source: curl/curl\r\n        (namespace/service account of the client pod)
    X-Egress-Mesh-Protocol: http\r\n           (http, https or tcp: how the gateway may log it)
    \r\n

The gateway answers ``HTTP/1.1 200 Connection Established`` and then relays bytes both ways, or
an error status and closes: 400 (not a well-formed CONNECT), 403 (a destination the gateway
refuses: itself, loopback, link-local), 405 (another method), 502 (upstream refused or
unresolvable), 504 (upstream timed out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCE_HEADER = "X-Egress-Mesh-Source"
PROTOCOL_HEADER = "X-Egress-Mesh-Protocol"
MAX_HEAD = 8192
ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class TunnelError(ValueError):
    """A malformed CONNECT head; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class ConnectRequest:
    host: str
    port: int
    source: str = ""
    protocol: str = "tcp"

    def encode(self) -> bytes:
        target = f"{self.host}:{self.port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if self.source:
            head += f"{SOURCE_HEADER}: {self.source}\r\n"
        head += f"{PROTOCOL_HEADER}: {self.protocol}\r\n\r\n"
        return head.encode("ascii")

    @classmethod
    def decode(cls, head: bytes) -> ConnectRequest:
        """Parse a request head (up to and including the blank line)."""
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            raise TunnelError(400, "request head is not ASCII") from None
        lines = text.split("\r\n")
        if any(_CONTROL.search(line) for line in lines):
            raise TunnelError(400, "control character in the request head")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise TunnelError(400, f"malformed request line {lines[0]!r}")
        method, target, _ = parts
        if method != "CONNECT":
            raise TunnelError(405, f"only CONNECT is served here, not {method}")
        host, sep, port_text = target.rpartition(":")
        if not sep or not _HOST.match(host) or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TunnelError(400, f"CONNECT target must be host:port, got {target!r}")
        headers = {}
        for line in lines[1:]:
            if not line:
                break
            name, sep, value = line.partition(":")
            if not sep:
                raise TunnelError(400, f"malformed header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        return cls(
            host=host.strip("[]").lower(),
            port=int(port_text),
            source=headers.get(SOURCE_HEADER.lower(), ""),
            protocol=headers.get(PROTOCOL_HEADER.lower(), "tcp"),
        )


def error_response(status: int, reason: str) -> bytes:
    phrases = {
        400: "Bad Request",
        403: "Forbidden",
        405: "Method Not Allowed",
        502: "Bad Gateway",
        504: "Gateway Timeout",
    }
    body = (reason + "\n").encode()
    return (
        f"HTTP/1.1 {status} {phrases.get(status, 'Error')}\r\ncontent-type: text/plain\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
