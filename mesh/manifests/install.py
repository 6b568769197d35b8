"""The install manifests, rendered from options (pure functions, no cluster needed).

``render_install(options)`` returns, in apply order: the mesh Namespace, the CRDs, the
controller's ServiceAccount, ClusterRole and ClusterRoleBinding, its Role and RoleBinding (the
webhook certificate Secret ``osm-webhook-<mesh>-cert`` in the mesh namespace), the
``osm-controller`` Service and Deployment, the MutatingWebhookConfiguration
``osm-webhook-<mesh>`` (caBundle patched in by the controller at start) and the MeshConfig
``osm-mesh-config``.

Options (``InstallOptions``, ``--set``) are in ``mesh.manifests.options``.
"""

from __future__ import annotations

from typing import Any

from mesh.api import crds
from mesh.api.proxyconfig import CONFIG_PORT
from mesh.api.resources import (
    DEFAULT_MESH_NAMESPACE,
    DEFAULT_MESHCONFIG_NAME,
    MESHCONFIG_API,
    MONITORED_BY_LABEL,
)

from .options import CONTROLLER_NAME
from .options import PULL_POLICIES as PULL_POLICIES
from .options import InstallOptions as InstallOptions
from .options import OptionError as OptionError
from .options import apply_sets as apply_sets

WEBHOOK_PORT = 9443
WEBHOOK_PATH = "/mutate-pod-creation"
WEBHOOK_NAME = "sidecar-injector.openservicemesh.io"
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
            # sidecars' projected tokens are checked by the API server (--auth tokenreview)
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
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
        "--auth",
        "tokenreview",
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
