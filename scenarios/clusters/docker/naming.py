"""The Docker backend's names and small pure rules: labels, resource kinds, selectors, DNS aliases."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from scenarios.clusters.base import Unsupported

HARNESS_LABEL = "egress-mesh.io/harness"
ROLE_LABEL = "egress-mesh.io/role"
POD_LABEL = "egress-mesh.io/pod"
CONTAINER_LABEL = "egress-mesh.io/container"
CLUSTER_DOMAIN = "cluster.local"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}
#: apply order inside one manifest: what pods need exists before them
APPLY_ORDER = {"Namespace": 0, "ServiceAccount": 1, "ConfigMap": 1, "Secret": 1, "Service": 2}
KINDS = {
    "namespace": "Namespace",
    "ns": "Namespace",
    "serviceaccount": "ServiceAccount",
    "sa": "ServiceAccount",
    "service": "Service",
    "svc": "Service",
    "deployment": "Deployment",
    "deploy": "Deployment",
    "pod": "Pod",
    "po": "Pod",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "secret": "Secret",
    "meshconfig": "MeshConfig",
    "egress": "Egress",
    "egressgateway": "EgressGateway",
    "httproutegroup": "HTTPRouteGroup",
}


def kind_of(name: str) -> str:
    """``meshconfig``, ``egresses.policy.openservicemesh.io``, ``Deployment`` -> the object kind."""
    word = name.split(".", 1)[0].lower()
    if word in KINDS:
        return KINDS[word]
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in KINDS:
            return KINDS[word[: -len(suffix)]]
    raise Unsupported(f"the docker backend does not know the resource type {name!r}")


def plural(kind: str) -> str:
    """``Egress`` -> ``egresses``, ``Pod`` -> ``pods`` (as kubectl's NotFound messages say it)."""
    return kind.lower() + ("es" if kind.endswith("s") else "s")


def parse_selector(selector: str) -> list[tuple[str, str, str | None]]:
    """``app=curl,tier!=db,env`` -> [(key, op, value)] with op one of ``=``, ``!=``, ``exists``, ``!``."""
    terms: list[tuple[str, str, str | None]] = []
    for part in (p.strip() for p in (selector or "").split(",")):
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            terms.append((k.strip(), "!=", v.strip()))
        elif "=" in part:
            k, v = part.split("==", 1) if "==" in part else part.split("=", 1)
            terms.append((k.strip(), "=", v.strip()))
        elif part.startswith("!"):
            terms.append((part[1:].strip(), "!", None))
        else:
            terms.append((part, "exists", None))
    return terms


def selector_matches(selector: str | Mapping[str, str], labels: Mapping[str, str]) -> bool:
    if isinstance(selector, Mapping):
        return all(labels.get(k) == v for k, v in selector.items())
    for key, op, value in parse_selector(selector):
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


def service_aliases(name: str, namespace: str) -> list[str]:
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}",
    ]


def manifest_filename(kind: str, namespace: str, name: str) -> str:
    return f"{kind.lower()}.{namespace or '_'}.{name}.yaml"


def short_name(image: str) -> str:
    """``egress-mesh/curl:abc`` -> ``curl``."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]


def template_hash(template: Any) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def resolve_env(env: Iterable[Mapping[str, Any]], fields: Mapping[str, str]) -> list[str]:
    """``KEY=VALUE`` from a container's ``env`` (values and downward-API ``fieldRef``s)."""
    out = []
    for item in env or ():
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            out.append(f"{name}={item['value']}")
            continue
        ref = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref:
            out.append(f"{name}={fields.get(ref, '')}")
    return out
