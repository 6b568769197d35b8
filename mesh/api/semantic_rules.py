"""The rules of one mesh object that its CRD schema cannot express (``mesh.api.validation`` applies
them after the schema): host syntax, CIDRs that parse, object names Kubernetes accepts, HTTPRouteGroup
regexes that compile and methods that are HTTP methods, gateway Service names."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from mesh.api.hosts import normalise_host as normalize_host
from mesh.api.problems import Problem
from mesh.api.resources import HTTP_ROUTE_GROUP_KIND, SMI_SPECS_API

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_DNS_1123_LABEL = re.compile(rf"^{_DNS_LABEL}$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HOST_LABEL = re.compile(rf"^{_DNS_LABEL}$")


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a valid Egress host, or None when it is."""
    if not isinstance(host, str) or not host.strip():
        return "must be a host name (got an empty value)"
    if host != host.strip() or any(c.isspace() for c in host):
        return f"must be a host name without spaces (got {host!r})"
    if "://" in host:
        scheme = host.split("://", 1)[0]
        return f"must be a host name, not a URL: drop {scheme + '://'!r} (got {host!r})"
    if "/" in host:
        return f"must be a host name without a path (got {host!r})"
    try:
        ipaddress.ip_address(host.strip("[]"))
        return f"is an IP address; list addresses in spec.ipAddresses as CIDR, e.g. {host.strip('[]')}/32"
    except ValueError:
        pass
    if ":" in host:
        return f"must not carry a port; list ports in spec.ports (got {host!r})"
    if host in ("*", "*."):
        return "a bare '*' is not a host; set MeshConfig spec.traffic.enableEgress for permissive egress"
    wildcard = host.startswith("*.")
    if "*" in (host[2:] if wildcard else host):
        return f"may use '*' only as the whole first label, as in *.example.com (got {host!r})"
    try:
        name = normalize_host(host)
    except UnicodeError:
        return f"is not a valid international host name (got {host!r})"
    labels = (name[2:] if wildcard else name).split(".")
    if len(name) > 253:
        return f"must be at most 253 characters (got {len(name)})"
    for label in labels:
        if not _HOST_LABEL.match(label) or len(label) > 63:
            return (
                f"must be a DNS name: labels of letters, digits and '-', 1-63 characters, not starting or "
                f"ending with '-' (label {label!r} in {host!r})"
            )
    return None


def _cidr_problem(text: Any) -> str | None:
    try:
        ipaddress.ip_network(str(text), strict=False)
    except ValueError as exc:
        return f"is not a valid CIDR: {exc}"
    return None


def metadata_problems(obj: dict[str, Any], name: str) -> list[Problem]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [Problem(name, "metadata", "is required (with at least metadata.name)")]
    problems = []
    obj_name = meta.get("name")
    if not obj_name:
        problems.append(Problem(name, "metadata.name", "is required"))
    elif not isinstance(obj_name, str) or len(obj_name) > 253 or not _DNS_SUBDOMAIN.match(obj_name):
        problems.append(
            Problem(
                name,
                "metadata.name",
                f"must be lower-case letters, digits, '-' and '.', starting and ending with a letter or "
                f"digit, at most 253 characters (got {obj_name!r})",
            )
        )
    namespace = meta.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_1123_LABEL.match(namespace)
    ):
        problems.append(
            Problem(
                name,
                "metadata.namespace",
                f"must be a DNS label (lower case, at most 63) (got {namespace!r})",
            )
        )
    return problems


def semantic_problems(obj: dict[str, Any], name: str) -> list[Problem]:
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    problems: list[Problem] = []
    if not isinstance(spec, dict):
        return problems
    if kind == "Egress":
        for i, host in enumerate(_list(spec.get("hosts"))):
            if (why := host_problem(host)) is not None:
                problems.append(Problem(name, f"spec.hosts[{i}]", why))
        for i, cidr in enumerate(_list(spec.get("ipAddresses"))):
            if (why := _cidr_problem(cidr)) is not None:
                problems.append(Problem(name, f"spec.ipAddresses[{i}]", why))
        for i, ref in enumerate(_list(spec.get("matches"))):
            if isinstance(ref, dict) and (ref.get("apiGroup"), ref.get("kind")) not in EGRESS_MATCH_KINDS:
                known = " or ".join(f"{group} {kind}" for group, kind in EGRESS_MATCH_KINDS)
                got = f"{ref.get('apiGroup')} {ref.get('kind')}"
                problems.append(Problem(name, f"spec.matches[{i}]", f"must reference {known} (got {got})"))
    elif kind == "HTTPRouteGroup":
        problems.extend(_route_group_problems(spec, name))
    elif kind == "MeshConfig":
        traffic = spec.get("traffic") if isinstance(spec.get("traffic"), dict) else {}
        for list_name in ("outboundIPRangeExclusionList", "outboundIPRangeInclusionList"):
            for i, cidr in enumerate(_list(traffic.get(list_name))):
                if (why := _cidr_problem(cidr)) is not None:
                    problems.append(Problem(name, f"spec.traffic.{list_name}[{i}]", why))
    elif kind == "EgressGateway":
        for where, backend in gateway_backends(spec):
            service = backend.get("service")
            if isinstance(service, str) and service and not _DNS_1035_LABEL.match(service):
                problems.append(
                    Problem(
                        name,
                        f"{where}.service",
                        f"must be a Service name (lower case letters, digits and '-', starting with a "
                        f"letter) (got {service!r})",
                    )
                )
    return problems


EGRESS_MATCH_KINDS = (
    (SMI_SPECS_API, HTTP_ROUTE_GROUP_KIND),
    ("policy.openservicemesh.io/v1alpha1", "UpstreamTrafficSetting"),
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _regex_problem(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        re.compile(text)
    except re.error as exc:
        return f"must be a valid regular expression ({exc}) (got {text!r})"
    return None


def _route_group_problems(spec: dict[str, Any], name: str) -> list[Problem]:
    problems: list[Problem] = []
    for i, match in enumerate(_list(spec.get("matches"))):
        if not isinstance(match, dict):
            continue
        where = f"spec.matches[{i}]"
        if (why := _regex_problem(match.get("pathRegex"))) is not None:
            problems.append(Problem(name, f"{where}.pathRegex", why))
        for j, method in enumerate(_list(match.get("methods"))):
            if isinstance(method, str) and method != "*" and method not in HTTP_METHODS:
                allowed = ", ".join(HTTP_METHODS)
                why = f"must be '*' or one of {allowed} (got {method!r})"
                problems.append(Problem(name, f"{where}.methods[{j}]", why))
        headers = match.get("headers") if isinstance(match.get("headers"), dict) else {}
        for header, value in headers.items():
            if not _HEADER_NAME.match(str(header)):
                problems.append(
                    Problem(name, f"{where}.headers", f"must use HTTP header names as keys (got {header!r})")
                )
            elif (why := _regex_problem(value)) is not None:
                problems.append(Problem(name, f"{where}.headers.{header}", why))
    return problems


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def gateway_backends(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"spec.global[{i}]", b) for i, b in enumerate(_list(spec.get("global"))) if isinstance(b, dict)]
    for i, rule in enumerate(_list(spec.get("rules"))):
        gateways = _list(rule.get("egressGateways")) if isinstance(rule, dict) else []
        found.extend(
            (f"spec.rules[{i}].egressGateways[{j}]", b) for j, b in enumerate(gateways) if isinstance(b, dict)
        )
    return found
