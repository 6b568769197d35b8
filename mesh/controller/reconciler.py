"""Resources in, one ProxyConfig per identity out.

Two steps:

- ``Reconciler.admit(objects)`` validates the raw objects a source delivers with
  ``mesh.api.validation`` and keeps, per object (kind, namespace, name), the last version that
  was valid. An invalid object changes nothing: if an earlier version of it was valid, that
  version stays in force; otherwise it is ignored. Either way its error is recorded in the
  resulting ``Snapshot``. When two files define the same object, the copy from the file whose
  copy is in force stays; the newcomer is refused and reported (with no copy in force yet, the
  file that sorts first wins).
- ``compile_config(snapshot, identity)`` is pure and deterministic: the same snapshot gives the
  same ProxyConfig (and version) whatever the order the objects arrived in.

Compilation rules (see docs/controller.md):

- MeshConfig is ``osm-mesh-config`` in the mesh namespace (defaults when absent: egress off,
  egress policy on, no exclusions).
- mode: ``permissive`` when ``spec.traffic.enableEgress`` is true; otherwise ``policy`` when at
  least one Egress names the identity as a source and ``featureFlags.enableEgressPolicy`` is on;
  otherwise ``disabled``.
- rules: one per (Egress naming the identity, port). ``http``/``https`` rules carry the Egress's
  hosts (lower case, trailing dot removed) and its ``ipAddresses`` as cidrs; ``tcp`` rules carry
  only the cidrs (no cidrs: any address on that port). Rules are kept in permissive mode too,
  so per-rule gateways apply there as well.
- matches: an Egress that references HTTPRouteGroups (``spec.matches``) gets ``restricted``
  ``http`` rules carrying the entries of the referenced groups that exist; a missing group adds
  nothing (fail closed) and is reported in the snapshot's errors.
- gateway: the global EgressGateway's backend as
  ``<service>.<namespace>.svc.<cluster-domain>:<port>`` (port 1080 if the Service has it or is
  unknown, else the Service's first port; several backends: highest weight, then first listed).
  An Egress named in an EgressGateway's ``spec.rules[].egressPolicies`` gets that rule's
  gateway; every other rule gets the global gateway, so ``rule.gateway`` is always explicit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.api import validation
from mesh.api.hosts import normalise_host
from mesh.api.load import Document
from mesh.api.proxyconfig import (
    GATEWAY_PORT,
    Endpoint,
    Exclusions,
    Identity,
    Mode,
    Protocol,
    ProxyConfig,
    RequestMatch,
    Rule,
)
from mesh.api.resources import (
    DEFAULT_MESH_NAMESPACE,
    DEFAULT_MESHCONFIG_NAME,
    Egress,
    EgressGateway,
    GatewayBackend,
    HTTPRouteGroup,
    MeshConfig,
    Namespace,
    Service,
)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")

ObjectKey = tuple[str, str, str]  # kind, namespace, name


def object_key(obj: Any) -> ObjectKey:
    if not isinstance(obj, Mapping):
        return ("", "", "")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


Item = Mapping[str, Any] | Document  # what sources deliver: API objects, or documents from files


def _raw(item: Item) -> Any:
    return item.obj if isinstance(item, Document) else item


def _origin(item: Item) -> str:
    return item.file if isinstance(item, Document) else ""


@dataclass(frozen=True)
class Snapshot:
    """The admitted (valid) state of the mesh at one moment."""

    mesh_config: MeshConfig = field(default_factory=MeshConfig)
    egresses: tuple[Egress, ...] = ()
    gateways: tuple[EgressGateway, ...] = ()
    route_groups: tuple[HTTPRouteGroup, ...] = ()
    services: tuple[Service, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    identities: tuple[Identity, ...] = ()
    errors: tuple[str, ...] = ()
    counts: tuple[tuple[str, int], ...] = ()
    version: str = ""

    def namespace(self, name: str) -> Namespace | None:
        return next((ns for ns in self.namespaces if ns.name == name), None)


class Reconciler:
    """Admits source states into snapshots, remembering the last valid version of each object."""

    def __init__(
        self,
        mesh_namespace: str = DEFAULT_MESH_NAMESPACE,
        meshconfig_name: str = DEFAULT_MESHCONFIG_NAME,
    ) -> None:
        self.mesh_namespace = mesh_namespace
        self.meshconfig_name = meshconfig_name
        self._last_good: dict[ObjectKey, dict[str, Any]] = {}
        self._origins: dict[ObjectKey, str] = {}  # file of the copy in force (directory source)
        self._memo = validation.CheckMemo()

    def admit(self, objects: Iterable[Item], source_errors: Iterable[str] = ()) -> Snapshot:
        """Blocking and CPU-bound for large sets (the config server runs it off the event loop)."""
        chosen, refused = self._one_per_key(sorted(objects, key=lambda item: object_key(_raw(item))))
        result = validation.validate_objects(chosen, previous=self._last_good.values(), memo=self._memo)
        self._last_good = {object_key(o): o for o in result.valid}
        origins = {object_key(_raw(item)): _origin(item) for item in chosen}
        self._origins = {key: origins.get(key, self._origins.get(key, "")) for key in self._last_good}
        return build_snapshot(
            self._last_good.values(),
            mesh_namespace=self.mesh_namespace,
            meshconfig_name=self.meshconfig_name,
            errors=[*source_errors, *(str(p) for p in (*refused, *result.problems))],
        )

    def _one_per_key(self, items: list[Item]) -> tuple[list[Item], list[validation.Problem]]:
        """One item per object; a second definition never displaces the copy in force."""
        by_key: dict[ObjectKey, list[Item]] = {}
        chosen: list[Item] = []
        for item in items:
            key = object_key(_raw(item))
            if not key[0] or not key[2]:  # not an object with kind and name: validation says why
                chosen.append(item)
            elif key not in by_key:
                by_key[key] = [item]
                chosen.append(item)
            else:
                by_key[key].append(item)
        refused: list[validation.Problem] = []
        for key, copies in by_key.items():
            if len(copies) < 2:
                continue
            in_force = self._origins.get(key) if key in self._last_good else None
            winner = next((c for c in copies if in_force and _origin(c) == in_force), copies[0])
            if winner is not copies[0]:
                chosen[next(i for i, c in enumerate(chosen) if c is copies[0])] = winner
            where = winner.source if isinstance(winner, Document) else "another object"
            for loser in copies:
                if loser is not winner:
                    source = loser.source if isinstance(loser, Document) else ""
                    message = f"is defined twice: {where} stays in force, this copy is refused"
                    refused.append(
                        validation.Problem(validation.describe(_raw(loser)), "metadata.name", message, source)
                    )
        return chosen, refused


def build_snapshot(
    objects: Iterable[Mapping[str, Any]],
    mesh_namespace: str = DEFAULT_MESH_NAMESPACE,
    meshconfig_name: str = DEFAULT_MESHCONFIG_NAME,
    errors: Iterable[str] = (),
) -> Snapshot:
    """Typed snapshot of already-valid objects (order irrelevant)."""
    objects = sorted(objects, key=object_key)
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(str(obj.get("kind", "")), []).append(obj)

    mesh_config = MeshConfig(namespace=mesh_namespace, name=meshconfig_name)
    for obj in by_kind.get("MeshConfig", ()):
        if object_key(obj)[1:] == (mesh_namespace, meshconfig_name):
            mesh_config = MeshConfig.from_object(dict(obj))

    egresses = tuple(Egress.from_object(dict(o)) for o in by_kind.get("Egress", ()))
    identities: set[Identity] = set()
    for egress in egresses:
        identities.update(Identity(s.namespace, s.name) for s in egress.sources if s.kind == "ServiceAccount")
    for obj in by_kind.get("ServiceAccount", ()):
        identities.add(Identity(object_key(obj)[1] or "default", object_key(obj)[2]))
    for kind in ("Pod", *WORKLOAD_KINDS):
        for obj in by_kind.get(kind, ()):
            spec = _pod_spec(obj)
            if spec is not None:
                sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
                identities.add(Identity(object_key(obj)[1] or "default", sa))

    relevant_kinds = ("MeshConfig", "Egress", "EgressGateway", "Service", "HTTPRouteGroup")
    relevant = [o for o in objects if o.get("kind") in relevant_kinds]
    digest = hashlib.sha256()
    for obj in relevant:  # one object at a time: a single dump of 16,000 objects holds the GIL for 0.3 s
        digest.update(json.dumps(obj, sort_keys=True, default=str).encode() + b"\n")
    route_groups = tuple(HTTPRouteGroup.from_object(dict(o)) for o in by_kind.get("HTTPRouteGroup", ()))
    return Snapshot(
        mesh_config=mesh_config,
        egresses=egresses,
        gateways=tuple(EgressGateway.from_object(dict(o)) for o in by_kind.get("EgressGateway", ())),
        route_groups=route_groups,
        services=tuple(Service.from_object(dict(o)) for o in by_kind.get("Service", ())),
        namespaces=tuple(Namespace.from_object(dict(o)) for o in by_kind.get("Namespace", ())),
        identities=tuple(sorted(identities, key=str)),
        errors=(*errors, *missing_route_groups(egresses, route_groups)),
        counts=tuple(sorted((kind, len(objs)) for kind, objs in by_kind.items())),
        version=digest.hexdigest()[:16],
    )


def compile_config(
    snapshot: Snapshot, identity: Identity, cluster_domain: str = "cluster.local"
) -> ProxyConfig:
    mc = snapshot.mesh_config
    exclusions = Exclusions(
        ip_ranges=mc.outbound_ip_range_exclusions,
        ports=mc.outbound_port_exclusions,
        include_ip_ranges=mc.outbound_ip_range_inclusions,
    )
    egresses = [e for e in snapshot.egresses if _names(e, identity)] if mc.enable_egress_policy else []
    if mc.enable_egress:
        mode = Mode.PERMISSIVE
    elif egresses:
        mode = Mode.POLICY
    else:
        return ProxyConfig(identity=identity, mode=Mode.DISABLED, exclusions=exclusions).with_version()

    global_gateway = _global_gateway(snapshot, cluster_domain)
    per_egress = _rule_gateways(snapshot, cluster_domain)
    rules: list[Rule] = []
    for egress in egresses:
        ref = f"{egress.namespace}/{egress.name}"
        gateway = per_egress.get((egress.namespace, egress.name), global_gateway)
        hosts = tuple(sorted({normalise_host(h) for h in egress.hosts}))
        cidrs = tuple(sorted(set(egress.ip_addresses)))
        restricted, matches = request_matches(snapshot, egress)
        for port in egress.ports:
            protocol = Protocol(port.protocol)
            http = protocol is Protocol.HTTP
            rules.append(
                Rule(
                    protocol=protocol,
                    port=port.number,
                    hosts=() if protocol is Protocol.TCP else hosts,
                    cidrs=cidrs,
                    gateway=gateway,
                    egress=ref,
                    matches=matches if http else (),
                    restricted=restricted and http,
                )
            )
    rules.sort(key=lambda r: (r.port, r.protocol.value, r.egress, r.hosts, r.cidrs))
    return ProxyConfig(
        identity=identity,
        mode=mode,
        rules=tuple(dict.fromkeys(rules)),
        gateway=global_gateway,
        exclusions=exclusions,
    ).with_version()


def compile_all(snapshot: Snapshot, cluster_domain: str = "cluster.local") -> dict[Identity, ProxyConfig]:
    return {identity: compile_config(snapshot, identity, cluster_domain) for identity in snapshot.identities}


def request_matches(snapshot: Snapshot, egress: Egress) -> tuple[bool, tuple[RequestMatch, ...]]:
    """(restricted, matches) of an Egress's http rules, from the HTTPRouteGroups it references.

    As in osm-edge: no HTTPRouteGroup reference means any request; otherwise the entries of the
    referenced groups that exist (a missing group contributes nothing, so an Egress whose groups
    are all missing allows no request). A missing ``pathRegex`` or ``methods`` matches anything.
    """
    refs = [m.name for m in egress.matches if m.is_http_route_group]
    if not refs:
        return False, ()
    groups = {(g.namespace, g.name): g for g in snapshot.route_groups}
    found: list[RequestMatch] = []
    for name in refs:
        group = groups.get((egress.namespace, name))
        for entry in group.matches if group else ():
            methods = () if "*" in entry.methods else tuple(sorted(set(entry.methods)))
            headers = tuple(sorted((k.lower(), v) for k, v in entry.headers))
            found.append(RequestMatch(entry.path_regex, methods, headers))
    return True, tuple(dict.fromkeys(found))


def missing_route_groups(egresses: Iterable[Egress], groups: Iterable[HTTPRouteGroup]) -> list[str]:
    """One error per Egress reference to an HTTPRouteGroup that does not exist."""
    known = {(g.namespace, g.name) for g in groups}
    return [
        f"{egress.ref}: spec.matches[{i}]: HTTPRouteGroup {egress.namespace}/{m.name} does not exist; "
        "until it does it allows no HTTP request (fail closed)"
        for egress in egresses
        for i, m in enumerate(egress.matches)
        if m.is_http_route_group and (egress.namespace, m.name) not in known
    ]


def _names(egress: Egress, identity: Identity) -> bool:
    return any(
        (s.kind, s.namespace, s.name) == ("ServiceAccount", identity.namespace, identity.service_account)
        for s in egress.sources
    )


def _global_gateway(snapshot: Snapshot, cluster_domain: str) -> Endpoint | None:
    for gateway in sorted(snapshot.gateways, key=lambda g: (g.namespace, g.name)):
        if gateway.global_:
            return _endpoint(snapshot, gateway.global_, cluster_domain)
    return None


def _rule_gateways(snapshot: Snapshot, cluster_domain: str) -> dict[tuple[str, str], Endpoint]:
    found: dict[tuple[str, str], Endpoint] = {}
    for gateway in sorted(snapshot.gateways, key=lambda g: (g.namespace, g.name)):
        for rule in gateway.rules:
            endpoint = _endpoint(snapshot, rule.egress_gateways, cluster_domain)
            if endpoint is None:
                continue
            for policy in rule.egress_policies:
                found.setdefault(policy, endpoint)
    return found


def _endpoint(
    snapshot: Snapshot, backends: tuple[GatewayBackend, ...], cluster_domain: str
) -> Endpoint | None:
    if not backends:
        return None
    best = max(enumerate(backends), key=lambda ib: (ib[1].weight or 0, -ib[0]))[1]
    service = next(
        (s for s in snapshot.services if (s.namespace, s.name) == (best.namespace, best.service)), None
    )
    port = GATEWAY_PORT
    if service and service.ports and GATEWAY_PORT not in {p.port for p in service.ports}:
        port = service.ports[0].port
    return Endpoint(f"{best.service}.{best.namespace}.svc.{cluster_domain}", port)


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if obj.get("kind") == "Pod":
        return obj.get("spec") or {}
    template = (obj.get("spec") or {}).get("template")
    return (template or {}).get("spec") if isinstance(template, Mapping) else None
