"""Host normalisation, wildcard matching and the policy decision.

Wildcards: ``*.example.com`` matches any name strictly below ``example.com`` (one or more
labels: ``a.example.com``, ``a.b.example.com``), never ``example.com`` itself.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from mesh.api import hosts
from mesh.api.proxyconfig import Endpoint, Mode, Protocol, ProxyConfig, RequestMatch, Rule

# Used with fullmatch: "$" would also match before a final LF.
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


_AUTHORITY = re.compile(r"[^/?#]*")  # RFC 3986 3.2: the authority ends at the first / ? or #


class BadHost(ValueError):
    pass


def _split_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (``[v6]:port`` for IPv6 literals) and normalise the host."""
    text = text.strip(" \t")
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadHost(f"unterminated IPv6 literal in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise BadHost(f"garbage after IPv6 literal in {text!r}")
            port = _port(rest[1:], text)
        try:
            return str(ipaddress.IPv6Address(host)), port
        except ValueError:
            raise BadHost(f"bad IPv6 literal in {text!r}") from None
    if text.count(":") == 1:
        host, port_text = text.split(":")
        return normalise_host(host), _port(port_text, text)
    return normalise_host(text), port


# Cached here rather than decorated: mutmut does not mutate decorated functions. Apps name the same
# few hosts again and again.
split_host_port = lru_cache(maxsize=4096)(_split_host_port)


def _port(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise BadHost(f"bad port in {whole!r}")
    return int(text)


def normalise_host(host: str) -> str:
    """A name or IP literal from the wire in the one normal form (``mesh.api.hosts``), or BadHost:
    the data plane takes only ASCII names of valid labels (an international name arrives in its
    ASCII form; IDNA-encoding it here would decide a name other than the one sent)."""
    name = host.strip(hosts.BLANKS)
    if name.isascii():
        name = hosts.normalise_host(name)
        if _is_ip(name) or (len(name) <= 253 and _NAME.fullmatch(name)):  # fullmatch refuses ''
            return name
    raise BadHost(f"not a valid host name: {name!r}")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def _any_host_matches(patterns: tuple[str, ...], host: str) -> bool:
    for pattern in patterns:
        if host_matches(pattern, host):
            return True
    return False


@lru_cache(maxsize=1024)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def ip_in(ip: str, cidrs: tuple[str, ...]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in _network(c) for c in cidrs)


_rules_by_port: dict[tuple[int, int], tuple[ProxyConfig, tuple[Rule, ...]]] = {}


def rules_for_port(config: ProxyConfig, port: int) -> tuple[Rule, ...]:
    """The rules for ``port``, computed once per config and port (every request asks)."""
    key = (id(config), port)
    cached = _rules_by_port.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    rules = tuple(r for r in config.rules if r.port == port)
    if len(_rules_by_port) >= 1024:
        _rules_by_port.clear()
    _rules_by_port[key] = (config, rules)
    return rules


_request_sensitive: dict[tuple[int, int], tuple[ProxyConfig, bool]] = {}


def needs_request(config: ProxyConfig, port: int) -> bool:
    """Whether an HTTP decision on ``port`` can depend on more than the host (method, path,
    headers: some rule has HTTPRouteGroup matches); computed once per config and port."""
    key = (id(config), port)
    cached = _request_sensitive.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    rules = rules_for_port(config, port)
    sensitive = any(r.restricted or r.matches for r in rules if r.protocol == Protocol.HTTP)
    if len(_request_sensitive) >= 1024:
        _request_sensitive.clear()
    _request_sensitive[key] = (config, sensitive)
    return sensitive


def handling(config: ProxyConfig, port: int) -> Protocol | None:
    """How to treat a connection to ``port``: the rules' protocol, or None to sniff the bytes."""
    protocols = {r.protocol for r in rules_for_port(config, port)}
    return protocols.pop() if len(protocols) == 1 else None


@dataclass(frozen=True)
class HttpRequest:
    """What an HTTP rule's ``matches`` look at."""

    method: str
    target: str  # origin-form ``/path?query`` or absolute-form ``http://host/path``
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        """The path of the target; ``/`` for an absolute-form target without one, even when its
        query or fragment holds a ``/`` (``http://host?/get``)."""
        target = self.target
        if not target.startswith("/") and "://" in target:
            after_scheme = target.split("://", 1)[1]
            target = after_scheme[_AUTHORITY.match(after_scheme).end() :]  # type: ignore[union-attr]
        return target.split("?", 1)[0].split("#", 1)[0] or "/"


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def request_matches(match: RequestMatch, request: HttpRequest) -> bool:
    """osm-edge semantics: the regexes must match the whole path / header value."""
    if match.methods and "*" not in match.methods and request.method not in match.methods:
        return False
    if match.path_regex is not None and not _regex(match.path_regex).fullmatch(request.path):
        return False
    for name, pattern in match.headers:
        values = [v for n, v in request.headers if n.lower() == name]
        if not any(_regex(pattern).fullmatch(v) for v in values):
            return False
    return True


def rule_allows_request(rule: Rule, request: HttpRequest | None) -> bool:
    """A rule without matches allows any request; otherwise one of its matches must match."""
    if request is None or rule.protocol != Protocol.HTTP or not (rule.restricted or rule.matches):
        return True
    return any(request_matches(m, request) for m in rule.matches)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    target: str = ""  # what to connect to: the allowed name, or the original destination address
    gateway: Endpoint | None = None
    egress: str = ""


def decide(
    config: ProxyConfig,
    protocol: Protocol,
    port: int,
    dst_ip: str,
    name: str | None,
    request: HttpRequest | None = None,
) -> Decision:
    """Decide one HTTP request (``name`` from Host), TLS connection (SNI) or TCP connection.

    ``request`` (HTTP only) is checked against the ``matches`` of the rules that allow the
    destination; None skips that check (re-checking a connection rather than a request)."""
    if config.mode == Mode.DISABLED:
        return Decision(False, "egress disabled")
    rules = rules_for_port(config, port)
    unmatched: Rule | None = None
    if name and protocol != Protocol.TCP:
        for rule in rules:
            if rule.protocol == protocol and _any_host_matches(rule.hosts, name):
                if rule_allows_request(rule, request):
                    return _allow(config, rule, f"host {name} allowed", name)
                unmatched = unmatched or rule
    for rule in rules:
        if rule.protocol in (protocol, Protocol.TCP) and rule.cidrs and ip_in(dst_ip, rule.cidrs):
            if rule_allows_request(rule, request):
                return _allow(config, rule, f"address {dst_ip} allowed", dst_ip)
            unmatched = unmatched or rule
    if unmatched is not None and config.mode == Mode.POLICY and request is not None:
        what = f"{request.method} {request.path}"
        return Decision(False, f"no HTTPRouteGroup match of Egress {unmatched.egress} allows {what}")
    if config.mode == Mode.PERMISSIVE:
        gateway = config.gateway
        return Decision(True, "permissive", (name or dst_ip) if gateway else dst_ip, gateway)
    if name:
        return Decision(False, f"no rule allows {protocol} host {name} on port {port}")
    if protocol == Protocol.HTTPS:
        return Decision(False, f"no SNI and no rule allows address {dst_ip} on port {port}")
    return Decision(False, f"no rule allows {protocol} to {dst_ip} on port {port}")


def _allow(config: ProxyConfig, rule: Rule, reason: str, target: str) -> Decision:
    return Decision(True, reason, target, rule.gateway or config.gateway, rule.egress)
