"""ProxyConfig: the contract between the controller and every sidecar.

One document per identity (namespace/service account). The controller compiles it from
MeshConfig, Egress and EgressGateway resources; the sidecar enforces it. It travels as JSON
(``to_json``/``from_json``) and is validated against ``SCHEMA`` on both ends. ``version`` is a
content hash: equal documents have equal versions, so a sidecar can long-poll "anything newer
than what I have".

Modes:
- ``disabled``: egress off and no Egress policy names this identity. The outbound listener is
  closed, so apps get "connection refused" (curl exit 7), as osm-edge does.
- ``permissive``: everything goes out (through ``gateway`` when set).
- ``policy``: only what ``rules`` allow goes out; anything else is denied (HTTP 403
  ``Access denied``, other protocols closed).

Distribution (controller config server, plain HTTP, port ``CONFIG_PORT``)::

    GET /v1/proxyconfig/{namespace}/{serviceAccount}?version=V&wait=S

answers ``200`` with the JSON document (header ``ETag: "<version>"``) as soon as the current
version differs from ``V`` (at once when ``V`` is absent or stale), or ``304 Not Modified`` when
nothing changed within ``S`` seconds (long poll, default 30, at most 60).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

SCHEMA_ID = "egress-mesh.io/proxyconfig/v1"
CONFIG_PORT = 15128
#: where an egress gateway takes tunnels (``CONNECT host:port``; the contract is mesh/api/tunnel.py)
GATEWAY_PORT = 1080
#: the sidecar's readiness endpoint (HTTP): 200 once a config has been applied, 503 before
READINESS_PORT = 15021
READINESS_PATH = "/healthz/ready"
CONFIG_PATH = "/v1/proxyconfig/{namespace}/{service_account}"


def config_url(base: str, identity: Identity) -> str:
    """``base`` is ``http://host:port`` of the controller."""
    path = CONFIG_PATH.format(namespace=identity.namespace, service_account=identity.service_account)
    return base.rstrip("/") + path


class Mode(StrEnum):
    DISABLED = "disabled"
    PERMISSIVE = "permissive"
    POLICY = "policy"


class Protocol(StrEnum):
    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"


@dataclass(frozen=True)
class Identity:
    namespace: str
    service_account: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service_account}"

    @classmethod
    def parse(cls, text: str) -> Identity:
        namespace, sep, sa = text.partition("/")
        if not sep or not namespace or not sa:
            raise ValueError(f"identity must be NAMESPACE/SERVICEACCOUNT, got {text!r}")
        return cls(namespace, sa)


@dataclass(frozen=True)
class Endpoint:
    """A host:port the sidecar connects to (the egress gateway)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RequestMatch:
    """One HTTP request pattern (from an HTTPRouteGroup entry); every given field must match.

    ``path_regex`` must match the whole path without the query string (None: any path);
    ``methods`` lists the allowed methods (empty or ``*``: any); ``headers`` maps a header name
    (case-insensitive) to a regular expression the whole value must match.
    """

    path_regex: str | None = None
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, value regex), sorted


@dataclass(frozen=True)
class Rule:
    """One allowed destination set.

    ``hosts`` are normalised (lower case, no trailing dot) and may be ``*.domain`` wildcards
    (matching any name strictly below ``domain``). They apply to ``http`` (Host header) and
    ``https`` (TLS SNI). ``cidrs`` apply to the destination address, for any protocol.
    ``gateway`` is where allowed traffic of this rule goes (None: straight out).
    ``egress`` names the Egress resource (``namespace/name``) the rule came from, for logs.
    ``matches`` (http rules only) restrict which requests the rule allows: empty when
    ``restricted`` is false means any request; otherwise a request must match one entry, so a
    restricted rule without entries allows nothing (its HTTPRouteGroups are missing).
    """

    protocol: Protocol
    port: int
    hosts: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()
    gateway: Endpoint | None = None
    egress: str = ""
    matches: tuple[RequestMatch, ...] = ()
    restricted: bool = False


@dataclass(frozen=True)
class Exclusions:
    """Traffic never intercepted (mirrors MeshConfig's outbound exclusion lists)."""

    ip_ranges: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    include_ip_ranges: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    identity: Identity
    mode: Mode
    rules: tuple[Rule, ...] = ()
    gateway: Endpoint | None = None
    exclusions: Exclusions = field(default_factory=Exclusions)
    version: str = ""

    def with_version(self) -> ProxyConfig:
        """Return a copy whose ``version`` is the hash of its content."""
        body = _to_dict(replace(self, version=""))
        body.pop("version")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return replace(self, version=digest[:16])

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProxyConfig:
        validate(data)
        return cls(
            identity=Identity(data["identity"]["namespace"], data["identity"]["serviceAccount"]),
            mode=Mode(data["mode"]),
            rules=tuple(
                Rule(
                    protocol=Protocol(r["protocol"]),
                    port=r["port"],
                    hosts=tuple(r.get("hosts", ())),
                    cidrs=tuple(r.get("cidrs", ())),
                    gateway=_endpoint(r.get("gateway")),
                    egress=r.get("egress", ""),
                    matches=tuple(_request_match(m) for m in r.get("matches", ())),
                    restricted=bool(r.get("restricted", False) or r.get("matches")),
                )
                for r in data.get("rules", ())
            ),
            gateway=_endpoint(data.get("gateway")),
            exclusions=Exclusions(
                ip_ranges=tuple(data.get("exclusions", {}).get("ipRanges", ())),
                ports=tuple(data.get("exclusions", {}).get("ports", ())),
                include_ip_ranges=tuple(data.get("exclusions", {}).get("includeIpRanges", ())),
            ),
            version=data.get("version", ""),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ProxyConfig:
        return cls.from_dict(json.loads(text))


def closed(identity: Identity) -> ProxyConfig:
    """The fail-closed config a sidecar uses before it has ever received one."""
    return ProxyConfig(identity=identity, mode=Mode.DISABLED).with_version()


def _request_match(data: dict[str, Any]) -> RequestMatch:
    return RequestMatch(
        path_regex=data.get("pathRegex"),
        methods=tuple(data.get("methods", ())),
        headers=tuple(sorted((k.lower(), v) for k, v in data.get("headers", {}).items())),
    )


def _match_dict(match: RequestMatch) -> dict[str, Any]:
    return {"pathRegex": match.path_regex, "methods": list(match.methods), "headers": dict(match.headers)}


def _endpoint(data: dict[str, Any] | None) -> Endpoint | None:
    return Endpoint(data["host"], data["port"]) if data else None


def _to_dict(cfg: ProxyConfig) -> dict[str, Any]:
    def endpoint(e: Endpoint | None) -> dict[str, Any] | None:
        return asdict(e) if e else None

    return {
        "schema": SCHEMA_ID,
        "version": cfg.version,
        "identity": {"namespace": cfg.identity.namespace, "serviceAccount": cfg.identity.service_account},
        "mode": cfg.mode.value,
        "rules": [
            {
                "protocol": r.protocol.value,
                "port": r.port,
                "hosts": list(r.hosts),
                "cidrs": list(r.cidrs),
                "gateway": endpoint(r.gateway),
                "egress": r.egress,
                **(
                    {
                        "restricted": True,
                        "matches": [_match_dict(m) for m in r.matches],
                    }
                    if r.restricted or r.matches
                    else {}
                ),
            }
            for r in cfg.rules
        ],
        "gateway": endpoint(cfg.gateway),
        "exclusions": {
            "ipRanges": list(cfg.exclusions.ip_ranges),
            "ports": list(cfg.exclusions.ports),
            "includeIpRanges": list(cfg.exclusions.include_ip_ranges),
        },
    }


_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_ENDPOINT = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["host", "port"],
            "additionalProperties": False,
            "properties": {"host": {"type": "string", "minLength": 1}, "port": _PORT},
        },
    ]
}
_REQUEST_MATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "pathRegex": {"type": ["string", "null"]},
        "methods": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOST = {"type": "string", "pattern": rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$"}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "type": "object",
    "required": ["schema", "version", "identity", "mode"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "version": {"type": "string"},
        "identity": {
            "type": "object",
            "required": ["namespace", "serviceAccount"],
            "additionalProperties": False,
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "serviceAccount": {"type": "string", "minLength": 1},
            },
        },
        "mode": {"enum": [m.value for m in Mode]},
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["protocol", "port"],
                "additionalProperties": False,
                "properties": {
                    "protocol": {"enum": [p.value for p in Protocol]},
                    "port": _PORT,
                    "hosts": {"type": "array", "items": _HOST},
                    "cidrs": {"type": "array", "items": {"type": "string"}},
                    "gateway": _ENDPOINT,
                    "egress": {"type": "string"},
                    "restricted": {"type": "boolean"},
                    "matches": {"type": "array", "items": _REQUEST_MATCH},
                },
            },
        },
        "gateway": _ENDPOINT,
        "exclusions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ipRanges": {"type": "array", "items": {"type": "string"}},
                "ports": {"type": "array", "items": _PORT},
                "includeIpRanges": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


class InvalidProxyConfig(ValueError):
    pass


class _Unknown(Exception):
    """The schema uses a keyword ``_conforms`` does not know."""


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
}
_ANNOTATIONS = frozenset(("$schema", "$id"))


def _conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` is valid against ``schema``, as Draft 2020-12 (jsonschema) decides, for the
    keywords SCHEMA uses. It decides only; ``validate`` asks jsonschema for the message when it says no.
    (jsonschema itself costs the sidecar 5 MB of memory; tests check that both agree.)"""
    for keyword, rule in schema.items():
        if keyword == "type":
            if not any(_TYPES[t](value) for t in ([rule] if isinstance(rule, str) else rule)):
                return False
        elif keyword == "properties":
            if isinstance(value, dict):
                for name, sub in rule.items():
                    if name in value and not _conforms(value[name], sub):
                        return False
        elif keyword == "required":
            if isinstance(value, dict) and any(name not in value for name in rule):
                return False
        elif keyword == "additionalProperties":
            if isinstance(value, dict):
                known = schema.get("properties", {})
                extra = [v for k, v in value.items() if k not in known]
                if rule is False and extra:
                    return False
                if isinstance(rule, dict) and not all(_conforms(v, rule) for v in extra):
                    return False
        elif keyword == "items":
            if isinstance(value, list) and not all(_conforms(v, rule) for v in value):
                return False
        elif keyword in ("enum", "const"):
            allowed = rule if keyword == "enum" else [rule]
            if not all(isinstance(a, str) for a in allowed):
                raise _Unknown(keyword)  # only string constants are compared here
            if not (isinstance(value, str) and value in allowed):
                return False
        elif keyword == "minLength":
            if isinstance(value, str) and len(value) < rule:
                return False
        elif keyword in ("minimum", "maximum"):
            if _TYPES["number"](value) and (value < rule if keyword == "minimum" else value > rule):
                return False
        elif keyword == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                return False
        elif keyword == "oneOf":
            if sum(_conforms(value, sub) for sub in rule) != 1:
                return False
        elif keyword not in _ANNOTATIONS:
            raise _Unknown(keyword)
    return True


def validate(data: dict[str, Any]) -> None:
    """Raise InvalidProxyConfig naming the field and the rule broken."""
    try:
        conforms = _conforms(data, SCHEMA)
    except _Unknown:
        conforms = False
    if not conforms:
        import jsonschema  # only to say what is wrong (or when the check above cannot tell)

        errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = ".".join(str(p) for p in e.absolute_path) or "(document)"
            raise InvalidProxyConfig(f"ProxyConfig {where}: {e.message}")
    for i, rule in enumerate(data.get("rules", ())):
        for j, cidr in enumerate(rule.get("cidrs", ())):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise InvalidProxyConfig(f"ProxyConfig rules.{i}.cidrs.{j}: {exc}") from None
        for j, match in enumerate(rule.get("matches", ())):
            patterns = [("pathRegex", match.get("pathRegex"))]
            patterns += [(f"headers.{k}", v) for k, v in match.get("headers", {}).items()]
            for where, pattern in patterns:
                try:
                    re.compile(pattern or "")
                except re.error as exc:
                    raise InvalidProxyConfig(f"ProxyConfig rules.{i}.matches.{j}.{where}: {exc}") from None
