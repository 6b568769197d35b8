"""The original destination of a REDIRECTed connection (``SO_ORIGINAL_DST``).

``OriginalDestination`` is the interface; tests substitute a function returning a fixed
address so they can drive the sidecar without iptables.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP6T_SO_ORIGINAL_DST = 80  # linux/netfilter_ipv6/ip6_tables.h

OriginalDestination = Callable[[socket.socket], tuple[str, int]]


class NoOriginalDestination(OSError):
    pass


def so_original_dst(sock: socket.socket) -> tuple[str, int]:
    """Ask netfilter where the client meant to connect before the REDIRECT."""
    try:
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
            port = struct.unpack("!H", raw[2:4])[0]
            address = ipaddress.IPv6Address(raw[8:24])
            return (str(address.ipv4_mapped or address), port)
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError as exc:
        raise NoOriginalDestination(f"no original destination: {exc.strerror}") from None
    port = struct.unpack("!H", raw[2:4])[0]
    return (socket.inet_ntoa(raw[4:8]), port)


def fixed(address: str, port: int) -> OriginalDestination:
    """For tests: every connection 'was meant for' ``address:port``."""
    return lambda _sock: (address, port)
