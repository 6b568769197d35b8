"""The egress boundary: NetworkPolicies under which the only way out of a meshed pod is the mesh.

``compile_boundary(snapshot, mesh_name)`` is pure: the same snapshot gives the same objects. With
MeshConfig ``spec.traffic.enableEgressBoundary`` on, every namespace labelled
``openservicemesh.io/monitored-by: <mesh>`` gets one ``networking.k8s.io/v1`` NetworkPolicy
(``egress-mesh-boundary``) selecting all of its pods, with egress allowed only

- to cluster DNS (pods ``k8s-app=kube-dns`` in ``kube-system``, port 53 UDP and TCP),
- to the controller's config port (the pods behind the ``osm-controller`` Service),
- to the pods of the mesh's own namespaces (traffic that stays inside the mesh),
- to every egress gateway an EgressGateway names (the pods behind its Service, on the port the
  sidecars use: the Service's target port),
- in passthrough mode (an Egress no gateway carries), to the Egress's ``ipAddresses`` on its ports.

Namespaces that host a gateway's Service, and the mesh namespace, get none: the gateway goes out
on everyone's behalf. The policies are labelled (``BOUNDARY_LABEL: <mesh>``) so the controller
finds, updates and deletes exactly its own. What a policy cannot say (a host name in passthrough
mode, a gateway Service that does not exist) comes back as a warning; the boundary stays closed.
The Docker backend translates the same objects into host firewall rules
(``scenarios/clusters/docker_firewall.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mesh.api.proxyconfig import CONFIG_PORT
from mesh.api.resources import MONITORED_BY_LABEL, Egress, GatewayBackend, Service
from mesh.manifests.install import CONTROLLER_NAME, NAMESPACE_NAME_LABEL

from .reconciler import GATEWAY_PORT, Snapshot

POLICY_NAME = "egress-mesh-boundary"
NETWORK_POLICY_API = "networking.k8s.io/v1"
#: value: the mesh name; the controller manages exactly the NetworkPolicies carrying it
BOUNDARY_LABEL = "egress-mesh.io/boundary"
MANAGED_BY = {"app.kubernetes.io/managed-by": "egress-mesh"}
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
DNS_PORT = 53


@dataclass(frozen=True)
class BoundaryPlan:
    """The NetworkPolicies the boundary needs now, and what it could not express."""

    policies: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()


def compile_boundary(snapshot: Snapshot, mesh_name: str) -> BoundaryPlan:
    if not snapshot.mesh_config.enable_egress_boundary:
        return BoundaryPlan()
    warnings: list[str] = []
    mesh_namespace = snapshot.mesh_config.namespace
    backends = _gateway_backends(snapshot)
    gateway_rules, gateway_namespaces = _gateway_rules(snapshot, backends, warnings)
    meshed = sorted(
        ns.name
        for ns in snapshot.namespaces
        if ns.labels.get(MONITORED_BY_LABEL) == mesh_name
        and ns.name != mesh_namespace
        and ns.name not in gateway_namespaces
    )
    common = [_dns_rule(), _controller_rule(snapshot), _mesh_rule(mesh_name), *gateway_rules]
    direct = _passthrough_rules(snapshot, set(meshed), warnings)
    if snapshot.mesh_config.enable_egress and not _global_backends(snapshot):
        warnings.append(
            "spec.traffic.enableEgress is true but no EgressGateway has spec.global: with the egress "
            "boundary on, meshed pods reach only cluster DNS, the controller, the mesh and the "
            "ipAddresses of Egress policies (route egress through a gateway)"
        )
    policies = tuple(_policy(ns, mesh_name, [*common, *direct.get(ns, [])]) for ns in meshed)
    return BoundaryPlan(policies, tuple(warnings))


def policy_key(policy: Mapping[str, Any]) -> tuple[str, str]:
    meta = policy.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def boundary_labels(mesh_name: str) -> dict[str, str]:
    return {**MANAGED_BY, BOUNDARY_LABEL: mesh_name}


# --- rules ------------------------------------------------------------------------------------------


def _policy(namespace: str, mesh_name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": NETWORK_POLICY_API,
        "kind": "NetworkPolicy",
        "metadata": {"name": POLICY_NAME, "namespace": namespace, "labels": boundary_labels(mesh_name)},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": rules},
    }


def _pods(namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": dict(sorted(labels.items()))},
    }


def _dns_rule() -> dict[str, Any]:
    return {
        "to": [_pods(DNS_NAMESPACE, DNS_POD_LABELS)],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
    }


def _controller_rule(snapshot: Snapshot) -> dict[str, Any]:
    """The pods behind the controller's Service on its config port (install defaults if unseen)."""
    namespace = snapshot.mesh_config.namespace
    service = _service(snapshot, namespace, CONTROLLER_NAME)
    labels: Mapping[str, str] = {"app": CONTROLLER_NAME}
    port: int | str = CONFIG_PORT
    if service and service.selector:
        labels = service.selector
        config = next((p for p in service.ports if p.port == CONFIG_PORT), None)
        if config is not None and config.target_port is not None:
            port = config.target_port
    return {"to": [_pods(namespace, labels)], "ports": [{"protocol": "TCP", "port": port}]}


def _mesh_rule(mesh_name: str) -> dict[str, Any]:
    return {"to": [{"namespaceSelector": {"matchLabels": {MONITORED_BY_LABEL: mesh_name}}}]}


def _global_backends(snapshot: Snapshot) -> list[GatewayBackend]:
    return [b for g in snapshot.gateways for b in g.global_]


def _gateway_backends(snapshot: Snapshot) -> list[GatewayBackend]:
    """Every backend any EgressGateway names (global and per-rule), each once, in a stable order."""
    found = _global_backends(snapshot) + [
        b for g in snapshot.gateways for rule in g.rules for b in rule.egress_gateways
    ]
    unique = {(b.namespace, b.service): b for b in found}
    return [unique[key] for key in sorted(unique)]


def _gateway_rules(
    snapshot: Snapshot, backends: Iterable[GatewayBackend], warnings: list[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    rules, namespaces = [], set()
    for backend in backends:
        namespaces.add(backend.namespace)
        service = _service(snapshot, backend.namespace, backend.service)
        where = f"egress gateway Service {backend.namespace}/{backend.service}"
        if service is None:
            warnings.append(f"{where} does not exist: the egress boundary lets no pod reach it")
            continue
        if not service.selector:
            warnings.append(f"{where} has no selector: the egress boundary cannot name its pods")
            continue
        rules.append({"to": [_pods(service.namespace, service.selector)], "ports": [_gateway_port(service)]})
    return rules, namespaces


def _gateway_port(service: Service) -> dict[str, Any]:
    """The pod port behind the Service port the sidecars dial (as ``reconciler._endpoint`` picks it)."""
    chosen = next((p for p in service.ports if p.port == GATEWAY_PORT), None)
    if chosen is None and service.ports:
        chosen = service.ports[0]
    if chosen is None:
        return {"protocol": "TCP", "port": GATEWAY_PORT}
    target = chosen.target_port if chosen.target_port is not None else chosen.port
    return {"protocol": chosen.protocol or "TCP", "port": target}


def _passthrough_rules(
    snapshot: Snapshot, meshed: set[str], warnings: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per source namespace: the ipAddresses (and ports) of the Egresses no gateway carries."""
    carried = {
        policy
        for g in snapshot.gateways
        for rule in g.rules
        if rule.egress_gateways
        for policy in rule.egress_policies
    }
    has_global = bool(_global_backends(snapshot))
    enabled = snapshot.mesh_config.enable_egress_policy
    rules: dict[str, list[dict[str, Any]]] = {}
    for egress in sorted(snapshot.egresses, key=lambda e: (e.namespace, e.name)) if enabled else ():
        if has_global or (egress.namespace, egress.name) in carried:
            continue
        sources = sorted({s.namespace for s in egress.sources if s.kind == "ServiceAccount"} & meshed)
        if not sources:
            continue
        if egress.hosts:
            warnings.append(
                f"{egress.ref}: in passthrough mode the egress boundary cannot follow host names "
                f"({', '.join(egress.hosts)}): only its ipAddresses can leave; route it through an "
                "egress gateway"
            )
        rule = _ip_rule(egress)
        for namespace in sources if rule else ():
            if rule not in rules.setdefault(namespace, []):
                rules[namespace].append(rule)
    return rules


def _ip_rule(egress: Egress) -> dict[str, Any] | None:
    cidrs = sorted({str(ipaddress.ip_network(c, strict=False)) for c in egress.ip_addresses})
    if not cidrs:
        return None
    ports = sorted({p.number for p in egress.ports})
    return {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs],
        "ports": [{"protocol": "TCP", "port": port} for port in ports],
    }


def _service(snapshot: Snapshot, namespace: str, name: str) -> Service | None:
    return next((s for s in snapshot.services if (s.namespace, s.name) == (namespace, name)), None)
