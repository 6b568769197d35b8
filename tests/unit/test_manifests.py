"""The install manifests: valid for every supported Kubernetes version, with the objects and
settings the controller, the webhook and the article rely on."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from mesh.api.validation import validate_object
from mesh.manifests import K8S_VERSIONS
from mesh.manifests.install import (
    InstallOptions,
    OptionError,
    apply_sets,
    render_install,
    render_uninstall,
    webhook_config_name,
    webhook_secret_name,
)

CUSTOM_GROUPS = ("openservicemesh.io/", "smi-spec.io/")

NON_DEFAULT, _ = apply_sets(
    InstallOptions(mesh_name="edge", namespace="mesh-control"),
    [
        "osm.enableEgress=true",
        "osm.image.registry=registry.example:5000/em,osm.image.tag=abc123",
        "osm.image.pullPolicy=Always",
        "osm.osmController.replicaCount=2",
        "osm.outboundIPRangeExclusionList={10.0.0.0/8,192.168.0.0/16}",
        "osm.outboundPortExclusionList=6379",
        "osm.enableEgressBoundary=true",
    ],
)
RENDERINGS = {"default": render_install(), "non-default": render_install(NON_DEFAULT)}


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("rendering", RENDERINGS, ids=list(RENDERINGS))
def test_every_rendered_object_is_valid_kubernetes(rendering: str, version: str) -> None:
    for obj in RENDERINGS[rendering]:
        if any(group in obj["apiVersion"] for group in CUSTOM_GROUPS):
            assert validate_object(obj) == [], obj  # our own CRD schema
        else:
            kubernetes_validate.validate(obj, version, strict=True)


def test_k8s_versions_are_shipped_by_kubernetes_validate() -> None:
    shipped = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    assert len(K8S_VERSIONS) >= 3
    assert {kubernetes_validate.utils.major_minor(v) for v in K8S_VERSIONS} <= shipped


def test_install_objects_in_apply_order() -> None:
    kinds = [o["kind"] for o in RENDERINGS["default"]]
    assert kinds == [
        "Namespace",
        *["CustomResourceDefinition"] * 4,
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "MutatingWebhookConfiguration",
        "MeshConfig",
    ]


def test_controller_service_and_deployment() -> None:
    objects = RENDERINGS["default"]
    service = by_kind(objects, "Service")
    assert service["metadata"] == service["metadata"] | {"name": "osm-controller", "namespace": "osm-system"}
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(15128, 15128), (443, 9443)}
    pod = by_kind(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "egress-mesh/controller:latest"
    assert [container["command"][0], *container["args"][:3]] == [
        "mesh-controller",
        "run",
        "--source",
        "kubernetes",
    ]
    args = dict(zip(container["args"][3::2], container["args"][4::2], strict=True))
    assert args == {
        "--mesh-name": "osm",
        "--mesh-namespace": "osm-system",
        "--port": "15128",
        "--webhook-port": "9443",
        "--proxy-image": "egress-mesh/proxy:latest",
        "--init-image": "egress-mesh/proxy:latest",
        "--image-pull-policy": "IfNotPresent",
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 15128}
    assert pod["spec"]["serviceAccountName"] == "osm-controller"


def test_webhook_configuration() -> None:
    webhook_config = by_kind(RENDERINGS["non-default"], "MutatingWebhookConfiguration")
    assert webhook_config["metadata"]["name"] == webhook_config_name("edge") == "osm-webhook-edge"
    (hook,) = webhook_config["webhooks"]
    assert hook["clientConfig"] == {
        "service": {
            "name": "osm-controller",
            "namespace": "mesh-control",
            "path": "/mutate-pod-creation",
            "port": 443,
        }
    }
    assert hook["namespaceSelector"] == {
        "matchLabels": {"openservicemesh.io/monitored-by": "edge"},
        # never the control plane's own namespace, even labelled (the API server sets this label)
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["mesh-control"]}
        ],
    }
    assert (hook["failurePolicy"], hook["sideEffects"], hook["admissionReviewVersions"]) == (
        "Fail",
        "None",
        ["v1"],
    )
    assert hook["rules"][0]["operations"] == ["CREATE"] and hook["rules"][0]["resources"] == ["pods"]


def test_rbac_lets_the_controller_watch_and_patch_the_webhook() -> None:
    objects = RENDERINGS["default"]
    role, binding = by_kind(objects, "ClusterRole"), by_kind(objects, "ClusterRoleBinding")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for group, resource in [
        ("config.openservicemesh.io", "meshconfigs"),
        ("policy.openservicemesh.io", "egresses"),
        ("policy.openservicemesh.io", "egressgateways"),
        ("specs.smi-spec.io", "httproutegroups"),
        *[("", r) for r in ("services", "pods", "namespaces", "serviceaccounts")],
    ]:
        assert {(group, resource, v) for v in ("get", "list", "watch")} <= granted, resource
    assert ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch") in granted
    boundary_verbs = ("get", "list", "watch", "create", "update", "patch", "delete")  # docs/boundary.md
    assert {("networking.k8s.io", "networkpolicies", v) for v in boundary_verbs} <= granted
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "osm-controller", "namespace": "osm-system"}
    ]


def test_rbac_for_the_webhook_certificate_secret_is_namespaced_and_narrow() -> None:
    objects = RENDERINGS["non-default"]
    role, binding = by_kind(objects, "Role"), by_kind(objects, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "mesh-control"
    granted = {
        (resource, verb, tuple(rule.get("resourceNames", ())))
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert webhook_secret_name("edge") == "osm-webhook-edge-cert"
    secret = ("osm-webhook-edge-cert",)
    assert granted == {("secrets", "create", ()), ("secrets", "get", secret), ("secrets", "update", secret)}
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "osm-controller",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "osm-controller", "namespace": "mesh-control"}
    ]
    cluster_role = by_kind(objects, "ClusterRole")
    assert not any("secrets" in rule["resources"] for rule in cluster_role["rules"])
    uninstalled = [(o["kind"], o["metadata"]["name"]) for o in render_uninstall(NON_DEFAULT)]
    assert {
        ("Secret", "osm-webhook-edge-cert"),
        ("Role", "osm-controller"),
        ("RoleBinding", "osm-controller"),
    } <= set(uninstalled)


async def test_pull_policy_reaches_the_injected_containers_through_the_controller_args() -> None:
    """--set osm.image.pullPolicy -> the controller's args -> what its webhook answers."""
    options, _ = apply_sets(InstallOptions(), ["osm.image.pullPolicy=Never"])
    deployment = by_kind(render_install(options), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["imagePullPolicy"] == "Never"
    args = dict(zip(container["args"], container["args"][1:], strict=False))
    assert args.get("--image-pull-policy") == "Never"

    from aiohttp.test_utils import TestClient, TestServer

    from mesh.api.resources import Namespace
    from mesh.controller.__main__ import build_parser, injection_settings
    from mesh.controller.server import ConfigStore
    from mesh.controller.webhook import make_webhook_app

    settings = injection_settings(build_parser().parse_args(container["args"]))
    monitored = Namespace("curl", labels={"openservicemesh.io/monitored-by": "osm"})

    async def lookup(name: str) -> Namespace | None:
        return monitored if name == "curl" else None

    pod = {
        "metadata": {"name": "curl", "namespace": "curl"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "1", "kind": {"kind": "Pod"}, "namespace": "curl", "object": pod},
    }
    async with TestClient(TestServer(make_webhook_app(ConfigStore(), settings, lookup))) as client:
        answer = await (await client.post("/mutate-pod-creation", json=review)).json()
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    patched = jsonpatch.apply_patch(pod, patch)
    policies = {c["name"]: c["imagePullPolicy"] for c in patched["spec"]["initContainers"]}
    assert policies == {"osm-init": "Never", "sidecar": "Never"}


def test_meshconfig_follows_the_options() -> None:
    default = by_kind(RENDERINGS["default"], "MeshConfig")
    assert default["metadata"]["name"] == "osm-mesh-config"
    assert default["spec"]["traffic"]["enableEgress"] is False
    assert default["spec"]["traffic"]["enableEgressBoundary"] is False
    custom = by_kind(RENDERINGS["non-default"], "MeshConfig")
    assert custom["metadata"]["namespace"] == "mesh-control"
    assert custom["spec"]["traffic"]["enableEgress"] is True
    assert custom["spec"]["traffic"]["outboundIPRangeExclusionList"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert custom["spec"]["traffic"]["outboundPortExclusionList"] == [6379]
    assert custom["spec"]["traffic"]["enableEgressBoundary"] is True


def test_image_settings() -> None:
    deployment = by_kind(RENDERINGS["non-default"], "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example:5000/em/controller:abc123"
    assert container["imagePullPolicy"] == "Always"  # a registry was given, so Always is honoured
    assert "registry.example:5000/em/proxy:abc123" in container["args"]
    assert deployment["spec"]["replicas"] == 2
    options, _ = apply_sets(InstallOptions(), ["osm.controllerImage=c:1", "osm.sidecarImage=p:2"])
    assert (options.controller_image, options.proxy_image, options.init_image) == ("c:1", "p:2", "p:2")


def test_pull_policy_always_with_local_images_falls_back_with_a_notice() -> None:
    options, notices = apply_sets(InstallOptions(), ["osm.enableEgress=false", "osm.image.pullPolicy=Always"])
    assert options.image_pull_policy == "IfNotPresent"
    assert "pullPolicy=Always ignored" in notices[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("osm.nope=1", "unknown --set key 'osm.nope'; known keys:\n  osm.enableEgress"),
        ("osm.enableEgress=maybe", "--set osm.enableEgress: must be true or false (got 'maybe')"),
        ("osm.image.pullPolicy=Sometimes", "must be one of Always, IfNotPresent, Never"),
        ("osm.osmController.replicaCount=0", "must be a whole number of at least 1"),
        ("osm.outboundIPRangeExclusionList=10.0.0.0/40", "'10.0.0.0/40' is not an IP address range"),
        ("osm.outboundPortExclusionList={80,0}", "'0' is not a port number"),
        ("osm.enableEgress", "expected KEY=VALUE"),
        (
            "osm.enableEgressBoundary=sure",
            "--set osm.enableEgressBoundary: must be true or false (got 'sure')",
        ),
    ],
)
def test_bad_set_values_are_refused(value: str, message: str) -> None:
    with pytest.raises(OptionError) as err:
        apply_sets(InstallOptions(), [value])
    assert message in str(err.value)


def test_uninstall_order_and_options() -> None:
    kinds = [o["kind"] for o in render_uninstall()]
    assert kinds[0] == "MutatingWebhookConfiguration"
    assert "CustomResourceDefinition" not in kinds and "Namespace" not in kinds
    everything = [o["kind"] for o in render_uninstall(delete_crds=True, delete_namespace=True)]
    assert everything[-5:] == ["Namespace", *["CustomResourceDefinition"] * 4]
