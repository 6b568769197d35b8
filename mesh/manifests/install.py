"""The install manifests, rendered from options (pure functions, no cluster needed).

``render_install(options)`` returns, in apply order: the mesh Namespace, the CRDs, the
controller's ServiceAccount, ClusterRole and ClusterRoleBinding, its Role and RoleBinding (the
webhook certificate Secret ``osm-webhook-<mesh>-cert`` in the mesh namespace), the
``osm-controller`` Service and Deployment, the MutatingWebhookConfiguration
``osm-webhook-<mesh>`` (caBundle patched in by the controller at start) and the MeshConfig
``osm-mesh-config``.

Options come from ``meshctl install`` flags and Helm-style ``--set key=value`` (``SET_KEYS``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mesh.api import crds
from mesh.api.lists import parse_cidrs, parse_ports
from mesh.api.proxyconfig import CONFIG_PORT
from mesh.api.resources import (
    DEFAULT_MESH_NAME,
    DEFAULT_MESH_NAMESPACE,
    DEFAULT_MESHCONFIG_NAME,
    MESHCONFIG_API,
    MONITORED_BY_LABEL,
)

CONTROLLER_NAME = "osm-controller"
WEBHOOK_PORT = 9443
WEBHOOK_PATH = "/mutate-pod-creation"
WEBHOOK_NAME = "sidecar-injector.openservicemesh.io"
DEFAULT_REGISTRY = "egress-mesh"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PART_OF = {"app.kubernetes.io/part-of": "egress-mesh"}
#: set by the API server on every Namespace (Kubernetes 1.21+)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def webhook_config_name(mesh_name: str) -> str:
    """Name of the MutatingWebhookConfiguration whose caBundle the controller patches."""
    return f"osm-webhook-{mesh_name}"


def webhook_secret_name(mesh_name: str) -> str:
    """Secret (in the mesh namespace) holding the webhook CA and serving certificate every replica uses."""
    return f"{webhook_config_name(mesh_name)}-cert"


def cluster_role_name(mesh_name: str) -> str:
    return f"osm-controller-{mesh_name}"


class OptionError(ValueError):
    """A bad install option; the message says which and why."""


@dataclass
class InstallOptions:
    mesh_name: str = DEFAULT_MESH_NAME
    namespace: str = DEFAULT_MESH_NAMESPACE
    enable_egress: bool = False
    enable_egress_policy: bool = True
    image_registry: str = DEFAULT_REGISTRY
    image_tag: str = "latest"
    image_pull_policy: str = "IfNotPresent"
    controller_image_name: str = "controller"
    proxy_image_name: str = "proxy"
    #: full image references; override registry/name/tag when set
    controller_image_ref: str = ""
    sidecar_image_ref: str = ""
    init_image_ref: str = ""
    controller_replicas: int = 1
    outbound_ip_range_exclusions: list[str] = field(default_factory=list)
    outbound_ip_range_inclusions: list[str] = field(default_factory=list)
    outbound_port_exclusions: list[int] = field(default_factory=list)
    enable_egress_boundary: bool = False

    @property
    def controller_image(self) -> str:
        return (
            self.controller_image_ref
            or f"{self.image_registry}/{self.controller_image_name}:{self.image_tag}"
        )

    @property
    def proxy_image(self) -> str:
        return self.sidecar_image_ref or f"{self.image_registry}/{self.proxy_image_name}:{self.image_tag}"

    @property
    def init_image(self) -> str:
        return self.init_image_ref or self.proxy_image

    @property
    def controller_url(self) -> str:
        return f"http://{CONTROLLER_NAME}.{self.namespace}.svc.cluster.local:{CONFIG_PORT}"


# --- --set ------------------------------------------------------------------------------------------


def _bool(key: str, text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise OptionError(f"--set {key}: must be true or false (got {text!r})")


def _text(key: str, text: str) -> str:
    if not text:
        raise OptionError(f"--set {key}: must not be empty")
    return text


def _pull_policy(key: str, text: str) -> str:
    if text not in PULL_POLICIES:
        raise OptionError(f"--set {key}: must be one of {', '.join(PULL_POLICIES)} (got {text!r})")
    return text


def _replicas(key: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise OptionError(f"--set {key}: must be a whole number of at least 1 (got {text!r})")
    return int(text)


def _cidrs(key: str, text: str) -> list[str]:
    try:
        return parse_cidrs(text)
    except ValueError as exc:
        raise OptionError(f"--set {key}: {exc}") from None


def _ports(key: str, text: str) -> list[int]:
    try:
        return parse_ports(text)
    except ValueError as exc:
        raise OptionError(f"--set {key}: {exc}") from None


#: --set key -> (InstallOptions field, parser, help)
SET_KEYS: dict[str, tuple[str, Any, str]] = {
    "osm.enableEgress": ("enable_egress", _bool, "permissive egress (MeshConfig spec.traffic.enableEgress)"),
    "osm.featureFlags.enableEgressPolicy": ("enable_egress_policy", _bool, "honour Egress policies"),
    "osm.enableEgressBoundary": (
        "enable_egress_boundary",
        _bool,
        "NetworkPolicies make the mesh the only way out (MeshConfig spec.traffic.enableEgressBoundary)",
    ),
    "osm.image.registry": ("image_registry", _text, f"image prefix (default {DEFAULT_REGISTRY})"),
    "osm.image.tag": ("image_tag", _text, "image tag for every image (default latest)"),
    "osm.image.pullPolicy": ("image_pull_policy", _pull_policy, "Always, IfNotPresent or Never"),
    "osm.image.name.controller": (
        "controller_image_name",
        _text,
        "controller image name (default controller)",
    ),
    "osm.image.name.proxy": ("proxy_image_name", _text, "sidecar/init image name (default proxy)"),
    "osm.controllerImage": ("controller_image_ref", _text, "full controller image reference"),
    "osm.sidecarImage": ("sidecar_image_ref", _text, "full sidecar image reference (init too, by default)"),
    "osm.initContainerImage": ("init_image_ref", _text, "full init container image reference"),
    "osm.osmController.replicaCount": ("controller_replicas", _replicas, "controller replicas (default 1)"),
    "osm.outboundIPRangeExclusionList": ("outbound_ip_range_exclusions", _cidrs, "CIDRs never intercepted"),
    "osm.outboundIPRangeInclusionList": (
        "outbound_ip_range_inclusions",
        _cidrs,
        "only these CIDRs intercepted",
    ),
    "osm.outboundPortExclusionList": ("outbound_port_exclusions", _ports, "ports never intercepted"),
}


def split_set(value: str) -> list[tuple[str, str]]:
    """``a=1,b={x,y}`` -> [("a", "1"), ("b", "{x,y}")] (Helm's --set syntax, commas outside braces)."""
    pairs, depth, current = [], 0, ""
    for char in value + ",":
        if char == "," and depth == 0:
            if current.strip():
                key, sep, val = current.partition("=")
                if not sep or not key.strip():
                    raise OptionError(f"--set {current!r}: expected KEY=VALUE")
                pairs.append((key.strip(), val.strip()))
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        current += char
    return pairs


def apply_sets(options: InstallOptions, values: list[str]) -> tuple[InstallOptions, list[str]]:
    """Apply ``--set`` values; returns the new options and notices worth telling the user."""
    changes: dict[str, Any] = {}
    given: set[str] = set()
    for value in values:
        for name, text in split_set(value):
            if name not in SET_KEYS:
                known = "\n  ".join(f"{k}: {h}" for k, (_, _, h) in SET_KEYS.items())
                raise OptionError(f"unknown --set key {name!r}; known keys:\n  {known}")
            attr, parse, _ = SET_KEYS[name]
            changes[attr] = parse(name, text)
            given.add(name)
    result = dataclasses.replace(options, **changes)
    notices = []
    local_images = not ({"osm.image.registry", "osm.controllerImage", "osm.sidecarImage"} & given)
    if result.image_pull_policy == "Always" and local_images and result.image_registry == DEFAULT_REGISTRY:
        notices.append(
            "osm.image.pullPolicy=Always ignored: the egress-mesh images are built locally and loaded into "
            "the cluster, no registry has them; using IfNotPresent (set osm.image.registry to pull from one)"
        )
        result = dataclasses.replace(result, image_pull_policy="IfNotPresent")
    return result, notices


# --- objects ----------------------------------------------------------------------------------------


def _labels(options: InstallOptions, **extra: str) -> dict[str, str]:
    return {**PART_OF, "app.kubernetes.io/instance": options.mesh_name, **extra}


def _meta(name: str, options: InstallOptions, namespaced: bool = True, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = options.namespace
    meta["labels"] = _labels(options, **labels)
    return meta


def namespace(options: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(options.namespace, options, namespaced=False),
    }


def service_account(options: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(CONTROLLER_NAME, options)}


def cluster_role(options: InstallOptions) -> dict[str, Any]:
    watch = ["get", "list", "watch"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(cluster_role_name(options.mesh_name), options, namespaced=False),
        "rules": [
            {"apiGroups": ["config.openservicemesh.io"], "resources": ["meshconfigs"], "verbs": watch},
            {
                "apiGroups": ["policy.openservicemesh.io"],
                "resources": ["egresses", "egressgateways"],
                "verbs": watch,
            },
            {"apiGroups": ["specs.smi-spec.io"], "resources": ["httproutegroups"], "verbs": watch},
            {
                "apiGroups": [""],
                "resources": ["services", "pods", "namespaces", "serviceaccounts"],
                "verbs": watch,
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": [webhook_config_name(options.mesh_name)],
                "verbs": ["get", "patch", "update"],
            },
            {  # the egress boundary (docs/boundary.md): the controller writes and removes its own
                "apiGroups": ["networking.k8s.io"],
                "resources": ["networkpolicies"],
                "verbs": [*watch, "create", "update", "patch", "delete"],
            },
        ],
    }


def cluster_role_binding(options: InstallOptions) -> dict[str, Any]:
    name = cluster_role_name(options.mesh_name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name, options, namespaced=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_NAME, "namespace": options.namespace}],
    }


def role(options: InstallOptions) -> dict[str, Any]:
    """The webhook certificate Secret only: create it when absent (a create cannot be limited to a
    name), read and replace it (when unusable) by name."""
    secret = webhook_secret_name(options.mesh_name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(CONTROLLER_NAME, options),
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [secret],
                "verbs": ["get", "update"],
            },
        ],
    }


def role_binding(options: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(CONTROLLER_NAME, options),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROLLER_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_NAME, "namespace": options.namespace}],
    }


def webhook_secret(options: InstallOptions) -> dict[str, Any]:
    """The Secret as ``meshctl uninstall`` deletes it (the controller creates it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(webhook_secret_name(options.mesh_name), options),
        "type": "kubernetes.io/tls",
    }


def controller_service(options: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(CONTROLLER_NAME, options, app=CONTROLLER_NAME),
        "spec": {
            "selector": {"app": CONTROLLER_NAME},
            "ports": [
                {"name": "config", "port": CONFIG_PORT, "targetPort": CONFIG_PORT, "protocol": "TCP"},
                {"name": "webhook", "port": 443, "targetPort": WEBHOOK_PORT, "protocol": "TCP"},
            ],
        },
    }


def controller_deployment(options: InstallOptions) -> dict[str, Any]:
    args = [
        "run",
        "--source",
        "kubernetes",
        "--mesh-name",
        options.mesh_name,
        "--mesh-namespace",
        options.namespace,
        "--port",
        str(CONFIG_PORT),
        "--webhook-port",
        str(WEBHOOK_PORT),
        "--proxy-image",
        options.proxy_image,
        "--init-image",
        options.init_image,
        "--image-pull-policy",
        options.image_pull_policy,
    ]
    probe = {"httpGet": {"path": "/readyz", "port": CONFIG_PORT}, "periodSeconds": 2, "failureThreshold": 3}
    container = {
        "name": CONTROLLER_NAME,
        "image": options.controller_image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["mesh-controller"],
        "args": args,
        "ports": [
            {"name": "config", "containerPort": CONFIG_PORT, "protocol": "TCP"},
            {"name": "webhook", "containerPort": WEBHOOK_PORT, "protocol": "TCP"},
        ],
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MESH_NAME", "value": options.mesh_name},
        ],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": CONFIG_PORT}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(CONTROLLER_NAME, options, app=CONTROLLER_NAME),
        "spec": {
            "replicas": options.controller_replicas,
            "selector": {"matchLabels": {"app": CONTROLLER_NAME}},
            "template": {
                "metadata": {"labels": _labels(options, app=CONTROLLER_NAME)},
                "spec": {"serviceAccountName": CONTROLLER_NAME, "containers": [container]},
            },
        },
    }


def mutating_webhook(options: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _meta(webhook_config_name(options.mesh_name), options, namespaced=False),
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "service": {
                        "name": CONTROLLER_NAME,
                        "namespace": options.namespace,
                        "path": WEBHOOK_PATH,
                        "port": 443,
                    }
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                # The control plane's own namespace never: its pods would wait for the webhook they serve.
                "namespaceSelector": {
                    "matchLabels": {MONITORED_BY_LABEL: options.mesh_name},
                    "matchExpressions": [
                        {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [options.namespace]}
                    ],
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
            }
        ],
    }


def default_meshconfig(
    namespace: str = DEFAULT_MESH_NAMESPACE,
    enable_egress: bool = False,
    options: InstallOptions | None = None,
) -> dict[str, Any]:
    """MeshConfig ``osm-mesh-config`` as installed (also what the Docker backend starts from)."""
    options = options or InstallOptions(namespace=namespace, enable_egress=enable_egress)
    return {
        "apiVersion": MESHCONFIG_API,
        "kind": "MeshConfig",
        "metadata": _meta(DEFAULT_MESHCONFIG_NAME, options),
        "spec": {
            "sidecar": {"logLevel": "error"},
            "traffic": {
                "enableEgress": options.enable_egress,
                "enableEgressBoundary": options.enable_egress_boundary,
                "enablePermissiveTrafficPolicyMode": True,
                "outboundIPRangeExclusionList": list(options.outbound_ip_range_exclusions),
                "outboundIPRangeInclusionList": list(options.outbound_ip_range_inclusions),
                "outboundPortExclusionList": list(options.outbound_port_exclusions),
            },
            "featureFlags": {"enableEgressPolicy": options.enable_egress_policy},
        },
    }


def render_install(options: InstallOptions | None = None) -> list[dict[str, Any]]:
    """Every object ``meshctl install`` applies, in apply order."""
    options = options or InstallOptions()
    return [
        namespace(options),
        *crds.crds(),
        service_account(options),
        cluster_role(options),
        cluster_role_binding(options),
        role(options),
        role_binding(options),
        controller_service(options),
        controller_deployment(options),
        mutating_webhook(options),
        default_meshconfig(options=options),
    ]


def render_uninstall(
    options: InstallOptions | None = None, delete_crds: bool = False, delete_namespace: bool = False
) -> list[dict[str, Any]]:
    """The objects ``meshctl uninstall`` deletes, in delete order (webhook first, so pod creation never
    blocks on a controller that is going away). CRDs only on request: deleting them deletes every
    Egress, EgressGateway and MeshConfig in the cluster."""
    options = options or InstallOptions()
    objects = [
        mutating_webhook(options),
        controller_deployment(options),
        controller_service(options),
        webhook_secret(options),
        role_binding(options),
        role(options),
        cluster_role_binding(options),
        cluster_role(options),
        service_account(options),
        default_meshconfig(options=options),
    ]
    if delete_namespace:
        objects.append(namespace(options))
    if delete_crds:
        objects += crds.crds()
    return objects
