"""Which egress gateway a sidecar is sent to: the highest weight, then the first listed; the port
its Service has; per-Egress gateways from ``spec.rules`` (issue 14, item 8)."""

from __future__ import annotations

import pytest

from mesh.api.proxyconfig import Endpoint, Identity
from mesh.controller.reconciler import Reconciler, compile_all, compile_config
from tests.article import httpbin_80, meshconfig

CURL = Identity("curl", "curl")


def backend(service: str, weight: int | None = None) -> dict:
    entry = {"service": service, "namespace": "gw"}
    return entry | ({"weight": weight} if weight is not None else {})


def gateway(name: str = "global", global_: list | None = None, rules: list | None = None) -> dict:
    spec = {"global": global_} if global_ else {}
    if rules:
        spec["rules"] = rules
    return {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "EgressGateway",
        "metadata": {"name": name, "namespace": "gw"},
        "spec": spec,
    }


def at(service: str, port: int = 1080, domain: str = "cluster.local") -> Endpoint:
    return Endpoint(f"{service}.gw.svc.{domain}", port)


@pytest.mark.parametrize(
    "backends, chosen",
    [
        ([backend("a"), backend("b")], "a"),
        ([backend("a", 1), backend("b", 5), backend("c", 5)], "b"),
        ([backend("a"), backend("b", 1)], "b"),
        ([backend("a", 0), backend("b")], "a"),
        ([backend("a", 2), backend("b", 2), backend("c", 1)], "a"),
    ],
    ids=["no-weights-first", "highest-then-first", "weight-beats-none", "zero-equals-none", "tie-first"],
)
def test_the_global_gateway_is_the_highest_weight_then_the_first_listed(backends, chosen):
    cfg = compile_config(Reconciler().admit([meshconfig(True), gateway(global_=backends)]), CURL)
    assert cfg.gateway == at(chosen)


@pytest.mark.parametrize(
    "ports, port",
    [([], 1080), ([3128], 3128), ([3128, 1080], 1080), ([8080, 3128], 8080)],
)
def test_the_gateway_port_is_1080_when_its_service_has_it_else_its_first_port(ports, port):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "gw"}}
    service["spec"] = {"ports": [{"port": p} for p in ports]}
    objs = [meshconfig(True), gateway(global_=[backend("a")]), service]
    assert compile_config(Reconciler().admit(objs), CURL).gateway == at("a", port)


def test_compile_all_uses_the_cluster_domain():
    snapshot = Reconciler().admit([meshconfig(False), httpbin_80(), gateway(global_=[backend("a")])])
    assert compile_all(snapshot)[CURL].gateway == at("a")
    assert compile_all(snapshot, "corp.internal")[CURL].gateway == at("a", domain="corp.internal")


def test_a_rule_without_gateways_does_not_hide_the_rules_after_it():
    rules = [
        {"egressPolicies": [{"name": "other", "namespace": "curl"}], "egressGateways": []},
        {
            "egressPolicies": [{"name": "httpbin-80", "namespace": "curl"}],
            "egressGateways": [backend("special")],
        },
    ]
    objs = [meshconfig(False), httpbin_80(), gateway(global_=[backend("a")]), gateway("rules", rules=rules)]
    cfg = compile_config(Reconciler().admit(objs), CURL)
    assert [r.gateway for r in cfg.rules] == [at("special")]
    assert cfg.gateway == at("a")


def test_the_first_gateway_by_namespace_and_name_wins_a_rule_for_the_same_egress():
    def rule(service: str) -> list:
        return [
            {
                "egressPolicies": [{"name": "httpbin-80", "namespace": "curl"}],
                "egressGateways": [backend(service)],
            }
        ]

    objs = [
        meshconfig(False),
        httpbin_80(),
        gateway("b-rules", rules=rule("second")),
        gateway("a-rules", rules=rule("first")),
    ]
    assert compile_config(Reconciler().admit(objs), CURL).rules[0].gateway == at("first")
