"""Comma-separated lists of address ranges and ports, as MeshConfig-style options, pod
annotations, ``meshctl`` flags, ``--set`` values and ``mesh-proxy init`` options write them.

One reading for all: items separated by commas, blanks around them ignored, empty items skipped,
``{a,b}`` (Helm's ``--set`` list form) the same as ``a,b``. A bad item is a ValueError that
quotes it; callers add which option or annotation it came from.
"""

from __future__ import annotations

import ipaddress


def split_list(text: str | None) -> list[str]:
    text = (text or "").strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_cidrs(text: str | None) -> list[str]:
    """``"10.0.0.0/8, 192.168.1.1"`` -> the items as written (an address is a /32 or /128 range)."""
    items = split_list(text)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address range (a CIDR such as 10.0.0.0/8)") from None
    return items


def parse_ports(text: str | None) -> list[int]:
    """``"80, 443"`` -> ``[80, 443]``: every item a port number 1-65535."""
    items = split_list(text)
    for item in items:
        if not (item.isascii() and item.isdigit()) or not 1 <= int(item) <= 65535:
            raise ValueError(f"{item!r} is not a port number (1-65535)")
    return [int(item) for item in items]
