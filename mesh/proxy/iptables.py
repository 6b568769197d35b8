"""The interception rule set: the contract between ``mesh-proxy init`` and the kernel.

Equivalent to osm-edge's outbound rules (``pkg/injector/iptables.go``), for the nat table:

- ``OUTPUT -p tcp -j OSM_PROXY_OUTBOUND`` sends every outbound TCP connection to our chain;
- ``OSM_PROXY_OUTBOUND`` returns (leaves alone) loopback traffic, the proxy's own UID, 127.0.0.1,
  the excluded IP ranges and ports; with an inclusion list it sends only those ranges on,
  otherwise everything else, to ``OSM_PROXY_OUT_REDIRECT``;
- ``OSM_PROXY_OUT_REDIRECT`` redirects to the sidecar's outbound listener (15001).

The rules are applied with ``iptables-restore --noflush``: declaring our chains flushes them, so a
second run leaves one copy, and the OUTPUT jump is only added when ``iptables -C`` says it is
missing. Inbound interception is not part of egress-mesh (there is no inbound listener).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mesh.api import lists

OUTBOUND_CHAIN = "OSM_PROXY_OUTBOUND"
REDIRECT_CHAIN = "OSM_PROXY_OUT_REDIRECT"
OUTPUT_JUMP = ("-p", "tcp", "-j", OUTBOUND_CHAIN)
MULTIPORT_MAX = 15  # iptables' multiport match takes at most 15 ports

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidOption(ValueError):
    """A user-supplied option that cannot be turned into rules."""


class InitError(RuntimeError):
    """Installing the rules failed (missing binary, no NET_ADMIN, kernel refused)."""


@dataclass(frozen=True)
class Interception:
    proxy_uid: int = 1500
    proxy_port: int = 15001
    exclude_ip_ranges: tuple[Network, ...] = ()
    exclude_ports: tuple[int, ...] = ()
    include_ip_ranges: tuple[Network, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.proxy_uid < 2**32:
            raise InvalidOption(f"--proxy-uid must be a user id (0..4294967295), got {self.proxy_uid}")
        _check_port(self.proxy_port, "--proxy-port")


@dataclass(frozen=True)
class Family:
    version: int
    restore: str
    command: str
    loopback: str


IPV4 = Family(4, "iptables-restore", "iptables", "127.0.0.1/32")
IPV6 = Family(6, "ip6tables-restore", "ip6tables", "::1/128")


def parse_cidrs(text: str | None, option: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.168.1.1"`` -> networks; a clear InvalidOption for anything else."""
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in lists.parse_cidrs(text))
    except ValueError as exc:
        raise InvalidOption(f"{option}: {exc}") from None


def parse_ports(text: str | None, option: str) -> tuple[int, ...]:
    try:
        return tuple(dict.fromkeys(lists.parse_ports(text)))
    except ValueError as exc:
        raise InvalidOption(f"{option}: {exc}") from None


def chain_rules(opts: Interception, family: Family = IPV4) -> list[str]:
    """The rules of our two chains, in order (without the OUTPUT jump)."""
    out = OUTBOUND_CHAIN
    rules = [
        f"-A {REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {opts.proxy_port}",
        f"-A {out} -o lo -j RETURN",
        f"-A {out} -m owner --uid-owner {opts.proxy_uid} -j RETURN",
        f"-A {out} -d {family.loopback} -j RETURN",
    ]
    rules += [f"-A {out} -d {net} -j RETURN" for net in _of_family(opts.exclude_ip_ranges, family)]
    for i in range(0, len(opts.exclude_ports), MULTIPORT_MAX):
        ports = ",".join(str(p) for p in opts.exclude_ports[i : i + MULTIPORT_MAX])
        rules.append(f"-A {out} -p tcp -m multiport --dports {ports} -j RETURN")
    if opts.include_ip_ranges:
        included = _of_family(opts.include_ip_ranges, family)
        rules += [f"-A {out} -d {net} -j {REDIRECT_CHAIN}" for net in included]
        rules.append(f"-A {out} -j RETURN")
    else:
        rules.append(f"-A {out} -j {REDIRECT_CHAIN}")
    return rules


def render(opts: Interception, family: Family = IPV4, output_jump: bool = True) -> str:
    """The ``iptables-restore --noflush`` input. ``output_jump`` adds the OUTPUT -> chain rule."""
    lines = [
        f"# egress-mesh outbound interception (IPv{family.version})",
        "*nat",
        f":{OUTBOUND_CHAIN} - [0:0]",
        f":{REDIRECT_CHAIN} - [0:0]",
        *chain_rules(opts, family),
    ]
    if output_jump:
        lines.append("-A OUTPUT " + " ".join(OUTPUT_JUMP))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


Runner = Callable[..., subprocess.CompletedProcess]


def apply(opts: Interception, family: Family = IPV4, run: Runner = subprocess.run) -> str:
    """Install the rules; return the restore input that was applied. Raises InitError."""
    for binary in (family.restore, family.command):
        if shutil.which(binary) is None:
            raise InitError(f"{binary} not found: install the iptables package in the init image")
    check = run(
        [family.command, "-w", "-t", "nat", "-C", "OUTPUT", *OUTPUT_JUMP], capture_output=True, text=True
    )
    if _denied(check.stderr):
        raise InitError(_denied_message(family, check.stderr))
    text = render(opts, family, output_jump=check.returncode != 0)
    done = run([family.restore, "-w", "--noflush"], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        if _denied(done.stderr):
            raise InitError(_denied_message(family, done.stderr))
        raise InitError(f"{family.restore} refused the rules: {done.stderr.strip() or 'no message'}")
    return text


def _denied(stderr: str) -> bool:
    text = stderr.lower()
    return "permission denied" in text or "must be root" in text or "operation not permitted" in text


def _denied_message(family: Family, stderr: str) -> str:
    return (
        f"{family.command}: permission denied; the init container needs root and the NET_ADMIN "
        f"capability ({stderr.strip()})"
    )


def _of_family(networks: Iterable[Network], family: Family) -> list[Network]:
    return [n for n in networks if n.version == family.version]


def _check_port(port: int, option: str) -> int:
    if not 0 < port < 65536:
        raise InvalidOption(f"{option}: {port} is not a port number (expected 1-65535)")
    return port
