"""The egress boundary's NetworkPolicies: what each mesh state compiles to, and that Kubernetes
accepts them (the schemas of every supported version)."""

from __future__ import annotations

import copy
import random

import kubernetes_validate
import pytest

from mesh.api.validation import validate_object
from mesh.controller.boundary import BOUNDARY_LABEL, POLICY_NAME, compile_boundary
from mesh.controller.reconciler import Reconciler
from mesh.manifests import K8S_VERSIONS
from mesh.manifests.install import InstallOptions, controller_service
from tests.article import global_egress_gateway, httpbin_80, meshconfig

GATEWAY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "global-egress-gateway", "namespace": "egress-gateway"},
    "spec": {
        "ports": [{"port": 1080, "name": "egress-nat-port", "targetPort": 1080}],
        "selector": {"app": "global-egress-gateway"},
    },
}
DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
CONTROLLER_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "osm-system"}},
            "podSelector": {"matchLabels": {"app": "osm-controller"}},
        }
    ],
    "ports": [{"protocol": "TCP", "port": 15128}],
}
MESH_RULE = {"to": [{"namespaceSelector": {"matchLabels": {"openservicemesh.io/monitored-by": "osm"}}}]}
GATEWAY_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "egress-gateway"}},
            "podSelector": {"matchLabels": {"app": "global-egress-gateway"}},
        }
    ],
    "ports": [{"protocol": "TCP", "port": 1080}],
}


def namespace(name: str, mesh: str | None = "osm") -> dict:
    labels = {"openservicemesh.io/monitored-by": mesh} if mesh else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def egress(name: str, ns: str = "curl", sources=("curl",), hosts=(), ips=(), ports=(80,)) -> dict:
    spec: dict = {
        "sources": [{"kind": "ServiceAccount", "namespace": n, "name": "app"} for n in sources],
        "ports": [{"number": p, "protocol": "tcp" if not hosts else "http"} for p in ports],
    }
    if hosts:
        spec["hosts"] = list(hosts)
    if ips:
        spec["ipAddresses"] = list(ips)
    return {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "Egress",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def boundary(objects, mesh: str = "osm"):
    return compile_boundary(Reconciler().admit(copy.deepcopy(objects)), mesh)


def by_namespace(plan) -> dict[str, dict]:
    return {p["metadata"]["namespace"]: p for p in plan.policies}


ARTICLE_GATEWAY_POLICY = [
    meshconfig(False, enableEgressBoundary=True),
    namespace("osm-system", None),
    namespace("curl"),
    namespace("egress-gateway", None),
    httpbin_80(),
    global_egress_gateway(),
    GATEWAY_SERVICE,
]


def test_boundary_off_means_no_policies():
    objects = [meshconfig(False), namespace("curl"), httpbin_80(), global_egress_gateway(), GATEWAY_SERVICE]
    assert boundary(objects).policies == ()
    assert boundary([*objects[1:], meshconfig(False, enableEgressBoundary=False)]).policies == ()


def test_article_gateway_mode_meshed_namespace_may_reach_dns_controller_mesh_and_gateway_only():
    plan = boundary(ARTICLE_GATEWAY_POLICY)
    assert plan.policies == (
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": POLICY_NAME,
                "namespace": "curl",
                "labels": {"app.kubernetes.io/managed-by": "egress-mesh", BOUNDARY_LABEL: "osm"},
            },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [DNS_RULE, CONTROLLER_RULE, MESH_RULE, GATEWAY_RULE],
            },
        },
    )
    assert plan.warnings == ()


def test_only_namespaces_of_this_mesh_get_a_policy():
    objects = [
        *ARTICLE_GATEWAY_POLICY,
        namespace("other-mesh", "edge"),
        namespace("plain", None),
        namespace("shop"),
    ]
    assert sorted(by_namespace(boundary(objects))) == ["curl", "shop"]
    assert sorted(by_namespace(boundary(objects, mesh="edge"))) == ["other-mesh"]


def test_gateway_and_mesh_namespaces_are_never_bounded_even_when_labelled():
    unlabelled = [
        o for o in ARTICLE_GATEWAY_POLICY if o["metadata"]["name"] not in ("egress-gateway", "osm-system")
    ]
    objects = [*unlabelled, namespace("egress-gateway"), namespace("osm-system")]
    assert sorted(by_namespace(boundary(objects))) == ["curl"]


def test_namespace_leaving_the_mesh_loses_its_policy():
    others = [o for o in ARTICLE_GATEWAY_POLICY if o["metadata"]["name"] != "curl"]
    assert len(boundary([*others, namespace("curl")]).policies) == 1
    assert boundary([*others, namespace("curl", None)]).policies == ()


def test_missing_gateway_service_is_a_warning_and_stays_closed():
    objects = [o for o in ARTICLE_GATEWAY_POLICY if o is not GATEWAY_SERVICE]
    plan = boundary(objects)
    (policy,) = plan.policies
    assert policy["spec"]["egress"] == [DNS_RULE, CONTROLLER_RULE, MESH_RULE]
    assert plan.warnings == (
        "egress gateway Service egress-gateway/global-egress-gateway does not exist: "
        "the egress boundary lets no pod reach it",
    )


def test_gateway_port_is_the_target_port_of_the_port_sidecars_dial():
    service = copy.deepcopy(GATEWAY_SERVICE)
    service["spec"]["ports"] = [
        {"port": 8080, "name": "admin", "targetPort": 9000},
        {"port": 1080, "name": "tunnel", "targetPort": "tunnel"},
    ]
    objects = [o for o in ARTICLE_GATEWAY_POLICY if o is not GATEWAY_SERVICE] + [service]
    (policy,) = boundary(objects).policies
    assert policy["spec"]["egress"][-1]["ports"] == [{"protocol": "TCP", "port": "tunnel"}]


def test_controller_rule_follows_the_installed_service():
    service = controller_service(InstallOptions())
    service["spec"]["selector"] = {"app": "osm-controller", "tier": "control"}
    (policy,) = boundary([*ARTICLE_GATEWAY_POLICY, service]).policies
    assert policy["spec"]["egress"][1]["to"][0]["podSelector"] == {
        "matchLabels": {"app": "osm-controller", "tier": "control"}
    }
    assert policy["spec"]["egress"][1]["ports"] == [{"protocol": "TCP", "port": 15128}]


def test_passthrough_allows_the_ip_addresses_of_egresses_naming_the_namespace():
    objects = [
        meshconfig(False, enableEgressBoundary=True),
        namespace("curl"),
        namespace("shop"),
        namespace("unmeshed", None),
        egress("db", ips=["10.1.2.3/24", "192.0.2.7/32"], ports=(5432, 5433)),
        egress("dup", ips=["192.0.2.7/32", "10.1.2.0/24"], ports=(5433, 5432)),
        egress(
            "api", ns="shop", sources=("shop", "unmeshed"), hosts=["api.example.com"], ips=["2001:db8::/64"]
        ),
        egress("names-only", ns="shop", sources=("shop",), hosts=["example.com"], ports=(443,)),
    ]
    plan = boundary(objects)
    policies = by_namespace(plan)
    assert sorted(policies) == ["curl", "shop"]
    assert policies["curl"]["spec"]["egress"][3:] == [
        {
            "to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}, {"ipBlock": {"cidr": "192.0.2.7/32"}}],
            "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 5433}],
        }
    ]
    assert policies["shop"]["spec"]["egress"][3:] == [
        {"to": [{"ipBlock": {"cidr": "2001:db8::/64"}}], "ports": [{"protocol": "TCP", "port": 80}]}
    ]
    assert plan.warnings == (
        "Egress shop/api: in passthrough mode the egress boundary cannot follow host names "
        "(api.example.com): only its ipAddresses can leave; route it through an egress gateway",
        "Egress shop/names-only: in passthrough mode the egress boundary cannot follow host names "
        "(example.com): only its ipAddresses can leave; route it through an egress gateway",
    )


def test_with_a_global_gateway_nothing_leaves_directly():
    objects = [*ARTICLE_GATEWAY_POLICY, egress("db", ips=["10.1.2.3/32"])]
    (policy,) = boundary(objects).policies
    assert not any("ipBlock" in peer for rule in policy["spec"]["egress"] for peer in rule["to"])


def test_egress_carried_by_a_rule_gateway_does_not_leave_directly():
    gateway = {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "EgressGateway",
        "metadata": {"name": "db-gateway", "namespace": "egress-gateway"},
        "spec": {
            "rules": [
                {
                    "egressPolicies": [{"name": "db", "namespace": "curl"}],
                    "egressGateways": [{"service": "global-egress-gateway", "namespace": "egress-gateway"}],
                }
            ]
        },
    }
    objects = [
        meshconfig(False, enableEgressBoundary=True),
        namespace("curl"),
        egress("db", ips=["10.1.2.3/32"]),
        egress("cache", ips=["10.9.9.9/32"], ports=(6379,)),
        gateway,
        GATEWAY_SERVICE,
    ]
    (policy,) = boundary(objects).policies
    assert policy["spec"]["egress"][3:] == [
        GATEWAY_RULE,
        {"to": [{"ipBlock": {"cidr": "10.9.9.9/32"}}], "ports": [{"protocol": "TCP", "port": 6379}]},
    ]


def test_permissive_passthrough_warns_that_only_ip_addresses_leave():
    plan = boundary([meshconfig(True, enableEgressBoundary=True), namespace("curl")])
    assert len(plan.policies) == 1
    assert plan.warnings == (
        "spec.traffic.enableEgress is true but no EgressGateway has spec.global: with the egress "
        "boundary on, meshed pods reach only cluster DNS, the controller, the mesh and the "
        "ipAddresses of Egress policies (route egress through a gateway)",
    )


def test_same_objects_in_any_order_give_the_same_policies():
    objects = [
        *ARTICLE_GATEWAY_POLICY,
        namespace("shop"),
        egress("db", ns="shop", sources=("shop",), ips=["10.0.0.1/32"]),
    ]
    expected = boundary(objects)
    for seed in range(5):
        shuffled = list(objects)
        random.Random(seed).shuffle(shuffled)
        assert boundary(shuffled) == expected


def test_meshconfig_switch_is_part_of_the_schema():
    assert validate_object(meshconfig(False, enableEgressBoundary=True)) == []
    problems = validate_object(meshconfig(False, enableEgressBoundary="yes"))
    assert problems and "enableEgressBoundary" in str(problems[0])


RICH = [
    *ARTICLE_GATEWAY_POLICY[:-2],
    namespace("shop"),
    egress("db", ips=["10.1.2.3/24", "2001:db8::1/64"], ports=(5432,)),
    egress("api", ns="shop", sources=("shop",), hosts=["api.example.com"], ips=["192.0.2.0/28"]),
]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("objects", [ARTICLE_GATEWAY_POLICY, RICH], ids=["gateway", "passthrough"])
def test_policies_are_valid_kubernetes(objects, version):
    policies = boundary(objects).policies
    assert policies
    for policy in policies:
        kubernetes_validate.validate(policy, version, strict=True)
