"""Typed views of the osm-edge resources egress-mesh understands.

``from_object`` turns an already-validated Kubernetes object (a dict as read from YAML or the
API) into one of these types. Validation (CRD schema plus semantic checks) lives in
``mesh.api.validation``; call it first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESHCONFIG_API = "config.openservicemesh.io/v1alpha2"
POLICY_API = "policy.openservicemesh.io/v1alpha1"
SMI_SPECS_API = "specs.smi-spec.io/v1alpha4"
HTTP_ROUTE_GROUP_KIND = "HTTPRouteGroup"
DEFAULT_MESH_NAME = "osm"
DEFAULT_MESH_NAMESPACE = "osm-system"
DEFAULT_MESHCONFIG_NAME = "osm-mesh-config"
MONITORED_BY_LABEL = "openservicemesh.io/monitored-by"
INJECTION_ANNOTATION = "openservicemesh.io/sidecar-injection"


@dataclass(frozen=True)
class Ref:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class MeshConfig:
    name: str = DEFAULT_MESHCONFIG_NAME
    namespace: str = DEFAULT_MESH_NAMESPACE
    enable_egress: bool = False
    enable_egress_policy: bool = True
    outbound_ip_range_exclusions: tuple[str, ...] = ()
    outbound_port_exclusions: tuple[int, ...] = ()
    outbound_ip_range_inclusions: tuple[str, ...] = ()
    #: the egress boundary (docs/boundary.md): NetworkPolicies leave meshed pods no way out but the mesh
    enable_egress_boundary: bool = False

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> MeshConfig:
        spec = obj.get("spec") or {}
        traffic = spec.get("traffic") or {}
        flags = spec.get("featureFlags") or {}
        meta = obj.get("metadata") or {}
        return cls(
            name=meta.get("name", DEFAULT_MESHCONFIG_NAME),
            namespace=meta.get("namespace", DEFAULT_MESH_NAMESPACE),
            enable_egress=bool(traffic.get("enableEgress", False)),
            enable_egress_policy=bool(flags.get("enableEgressPolicy", True)),
            outbound_ip_range_exclusions=tuple(traffic.get("outboundIPRangeExclusionList") or ()),
            outbound_port_exclusions=tuple(int(p) for p in traffic.get("outboundPortExclusionList") or ()),
            outbound_ip_range_inclusions=tuple(traffic.get("outboundIPRangeInclusionList") or ()),
            enable_egress_boundary=bool(traffic.get("enableEgressBoundary", False)),
        )


@dataclass(frozen=True)
class EgressSource:
    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class EgressPort:
    number: int
    protocol: str


@dataclass(frozen=True)
class EgressMatch:
    """A reference in ``Egress.spec.matches``: an object of ``kind`` in the Egress's namespace."""

    api_group: str
    kind: str
    name: str

    @property
    def is_http_route_group(self) -> bool:
        return (self.api_group, self.kind) == (SMI_SPECS_API, HTTP_ROUTE_GROUP_KIND)


@dataclass(frozen=True)
class Egress:
    name: str
    namespace: str
    sources: tuple[EgressSource, ...]
    ports: tuple[EgressPort, ...]
    hosts: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    matches: tuple[EgressMatch, ...] = ()

    @property
    def ref(self) -> Ref:
        return Ref("Egress", self.namespace, self.name)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Egress:
        spec = obj.get("spec") or {}
        meta = obj["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            sources=tuple(
                EgressSource(s.get("kind", "ServiceAccount"), s["name"], s["namespace"])
                for s in spec.get("sources") or ()
            ),
            ports=tuple(EgressPort(int(p["number"]), p["protocol"]) for p in spec.get("ports") or ()),
            hosts=tuple(spec.get("hosts") or ()),
            ip_addresses=tuple(spec.get("ipAddresses") or ()),
            matches=tuple(
                EgressMatch(str(m.get("apiGroup", "")), str(m.get("kind", "")), str(m.get("name", "")))
                for m in spec.get("matches") or ()
            ),
        )


@dataclass(frozen=True)
class HTTPMatch:
    """One ``spec.matches[]`` entry of an HTTPRouteGroup. Empty fields match anything."""

    name: str = ""
    path_regex: str | None = None
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (name, value regex), sorted by name


@dataclass(frozen=True)
class HTTPRouteGroup:
    """SMI ``specs.smi-spec.io/v1alpha4`` HTTPRouteGroup (only ``spec.matches`` matters to egress)."""

    name: str
    namespace: str
    matches: tuple[HTTPMatch, ...] = ()

    @property
    def ref(self) -> Ref:
        return Ref(HTTP_ROUTE_GROUP_KIND, self.namespace, self.name)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> HTTPRouteGroup:
        spec = obj.get("spec") or {}
        meta = obj["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            matches=tuple(
                HTTPMatch(
                    name=str(m.get("name", "")),
                    path_regex=m.get("pathRegex") or None,
                    methods=tuple(m.get("methods") or ()),
                    headers=tuple(sorted((str(k), str(v)) for k, v in (m.get("headers") or {}).items())),
                )
                for m in spec.get("matches") or ()
            ),
        )


@dataclass(frozen=True)
class GatewayBackend:
    service: str
    namespace: str
    weight: int | None = None


@dataclass(frozen=True)
class GatewayRule:
    egress_policies: tuple[tuple[str, str], ...]  # (namespace, name)
    egress_gateways: tuple[GatewayBackend, ...]


@dataclass(frozen=True)
class EgressGateway:
    name: str
    namespace: str
    global_: tuple[GatewayBackend, ...] = ()
    rules: tuple[GatewayRule, ...] = ()

    @property
    def ref(self) -> Ref:
        return Ref("EgressGateway", self.namespace, self.name)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> EgressGateway:
        spec = obj.get("spec") or {}
        meta = obj["metadata"]

        def backend(b: dict[str, Any]) -> GatewayBackend:
            return GatewayBackend(b["service"], b["namespace"], b.get("weight"))

        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            global_=tuple(backend(b) for b in spec.get("global") or ()),
            rules=tuple(
                GatewayRule(
                    egress_policies=tuple(
                        (p.get("namespace", meta.get("namespace", "default")), p["name"])
                        for p in r.get("egressPolicies") or ()
                    ),
                    egress_gateways=tuple(backend(b) for b in r.get("egressGateways") or ()),
                )
                for r in spec.get("rules") or ()
            ),
        )


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: str = "TCP"
    target_port: int | str | None = None


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    ports: tuple[ServicePort, ...] = ()
    #: ``spec.selector``: the labels of the pods behind it (empty: endpoints managed by hand)
    selector: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Service:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            ports=tuple(
                ServicePort(int(p["port"]), p.get("name", ""), p.get("protocol", "TCP"), p.get("targetPort"))
                for p in spec.get("ports") or ()
            ),
            selector={str(k): str(v) for k, v in (spec.get("selector") or {}).items()},
        )

    def dns_name(self, cluster_domain: str = "cluster.local") -> str:
        return f"{self.name}.{self.namespace}.svc.{cluster_domain}"


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Namespace:
        meta = obj["metadata"]
        return cls(meta["name"], dict(meta.get("labels") or {}), dict(meta.get("annotations") or {}))
