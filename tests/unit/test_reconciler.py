"""Compile tests: resources in, the ProxyConfig each identity gets out."""

from __future__ import annotations

import copy
import random

from mesh.api.load import Document
from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, Rule
from mesh.controller.reconciler import Reconciler, build_snapshot, compile_all, compile_config
from tests.article import global_egress_gateway, httpbin_80, meshconfig

CURL = Identity("curl", "curl")
GATEWAY = Endpoint("global-egress-gateway.egress-gateway.svc.cluster.local", 1080)


HTTPBIN_80 = httpbin_80()
GLOBAL_GATEWAY = global_egress_gateway()
GATEWAY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "global-egress-gateway", "namespace": "egress-gateway"},
    "spec": {"ports": [{"port": 1080, "name": "egress"}], "selector": {"app": "global-egress-gateway"}},
}


def egress(name: str, ns: str = "curl", sources=(("curl", "curl"),), hosts=(), ips=(), ports=((80, "http"),)):
    spec: dict = {
        "sources": [{"kind": "ServiceAccount", "namespace": n, "name": s} for n, s in sources],
        "ports": [{"number": p, "protocol": proto} for p, proto in ports],
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


def compiled(objects, identity=CURL) -> ProxyConfig:
    return compile_config(Reconciler().admit(copy.deepcopy(objects)), identity)


# --- the article's five states (DESIGN section 1) ------------------------------------------------


def test_state0_egress_disabled_no_policy_is_disabled():
    cfg = compiled([meshconfig(False)])
    assert cfg.mode is Mode.DISABLED
    assert cfg.rules == () and cfg.gateway is None


def test_state1_passthrough_permissive():
    cfg = compiled([meshconfig(True)])
    assert cfg.mode is Mode.PERMISSIVE
    assert cfg.gateway is None


def test_state2_passthrough_policy_allows_only_httpbin_80():
    cfg = compiled([meshconfig(False), HTTPBIN_80])
    assert cfg.mode is Mode.POLICY
    assert cfg.rules == (Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80"),)
    assert cfg.gateway is None


def test_state3_gateway_permissive():
    cfg = compiled([meshconfig(True), GLOBAL_GATEWAY, GATEWAY_SERVICE])
    assert cfg.mode is Mode.PERMISSIVE
    assert cfg.gateway == GATEWAY


def test_state4_gateway_policy_routes_allowed_rule_through_gateway():
    cfg = compiled([meshconfig(False), HTTPBIN_80, GLOBAL_GATEWAY, GATEWAY_SERVICE])
    assert cfg.mode is Mode.POLICY
    assert cfg.gateway == GATEWAY
    assert cfg.rules == (
        Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), gateway=GATEWAY, egress="curl/httpbin-80"),
    )


def test_no_meshconfig_means_egress_off():
    assert compiled([]).mode is Mode.DISABLED


def test_meshconfig_in_another_namespace_is_not_the_mesh_config():
    other = meshconfig(True)
    other["metadata"]["namespace"] = "elsewhere"
    assert compiled([other]).mode is Mode.DISABLED


def test_egress_policy_feature_flag_off_ignores_egress():
    mc = meshconfig(False)
    mc["spec"]["featureFlags"] = {"enableEgressPolicy": False}
    assert compiled([mc, HTTPBIN_80]).mode is Mode.DISABLED


def test_egress_for_another_identity_leaves_curl_disabled():
    cfg = compiled([meshconfig(False), egress("other", sources=[("curl", "someone-else")], hosts=["a.com"])])
    assert cfg.mode is Mode.DISABLED


# --- beyond the article ---------------------------------------------------------------------------


def test_several_egresses_and_sources_are_merged_per_identity():
    objs = [
        meshconfig(False),
        egress("a", sources=[("curl", "curl"), ("web", "frontend")], hosts=["a.example.com"]),
        egress("b", ns="web", sources=[("web", "frontend")], hosts=["b.example.com"], ports=[(443, "https")]),
    ]
    snapshot = Reconciler().admit(objs)
    by_identity = compile_all(snapshot)
    assert set(by_identity) == {CURL, Identity("web", "frontend")}
    assert [r.egress for r in by_identity[CURL].rules] == ["curl/a"]
    frontend = by_identity[Identity("web", "frontend")]
    assert [(r.port, r.protocol, r.hosts) for r in frontend.rules] == [
        (80, Protocol.HTTP, ("a.example.com",)),
        (443, Protocol.HTTPS, ("b.example.com",)),
    ]


def test_hosts_are_normalised_and_wildcards_kept():
    cfg = compiled([meshconfig(False), egress("w", hosts=["HTTPBIN.org.", "*.Example.COM"])])
    assert cfg.rules[0].hosts == ("*.example.com", "httpbin.org")


def test_https_rule_uses_hosts_on_its_port():
    cfg = compiled([meshconfig(False), egress("s", hosts=["api.github.com"], ports=[(443, "https")])])
    assert cfg.rules == (Rule(Protocol.HTTPS, 443, hosts=("api.github.com",), egress="curl/s"),)


def test_tcp_rule_uses_cidrs_not_hosts():
    cfg = compiled(
        [
            meshconfig(False),
            egress(
                "db", hosts=["db.example.com"], ips=["10.0.0.0/8", "192.168.1.5/32"], ports=[(5432, "tcp")]
            ),
        ]
    )
    assert cfg.rules == (Rule(Protocol.TCP, 5432, cidrs=("10.0.0.0/8", "192.168.1.5/32"), egress="curl/db"),)


def test_ip_addresses_on_http_ports_become_cidr_constraints():
    cfg = compiled(
        [meshconfig(False), egress("h", hosts=["x.org"], ips=["203.0.113.0/24"], ports=[(80, "http")])]
    )
    assert cfg.rules[0].hosts == ("x.org",)
    assert cfg.rules[0].cidrs == ("203.0.113.0/24",)


def test_exclusions_come_from_meshconfig():
    mc = meshconfig(
        True,
        outboundIPRangeExclusionList=["10.96.0.0/12"],
        outboundPortExclusionList=[6379],
        outboundIPRangeInclusionList=["0.0.0.0/0"],
    )
    ex = compiled([mc]).exclusions
    assert (ex.ip_ranges, ex.ports, ex.include_ip_ranges) == (("10.96.0.0/12",), (6379,), ("0.0.0.0/0",))


def test_gateway_port_follows_the_service():
    service = copy.deepcopy(GATEWAY_SERVICE)
    service["spec"]["ports"] = [{"port": 3128}]
    assert compiled([meshconfig(True), GLOBAL_GATEWAY, service]).gateway == Endpoint(GATEWAY.host, 3128)
    # unknown Service: the gateway's default port
    assert compiled([meshconfig(True), GLOBAL_GATEWAY]).gateway == GATEWAY


def test_per_rule_gateway_overrides_global_for_named_egress():
    special = {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "EgressGateway",
        "metadata": {"name": "special", "namespace": "egress-gateway"},
        "spec": {
            "rules": [
                {
                    "egressPolicies": [{"name": "db", "namespace": "curl"}],
                    "egressGateways": [{"service": "db-gateway", "namespace": "egress-gateway"}],
                }
            ]
        },
    }
    objs = [
        meshconfig(False),
        HTTPBIN_80,
        egress("db", ips=["10.1.0.0/16"], ports=[(5432, "tcp")]),
        GLOBAL_GATEWAY,
        special,
    ]
    cfg = compiled(objs)
    gateways = {r.egress: r.gateway for r in cfg.rules}
    assert gateways == {
        "curl/httpbin-80": GATEWAY,
        "curl/db": Endpoint("db-gateway.egress-gateway.svc.cluster.local", 1080),
    }
    assert cfg.gateway == GATEWAY


def test_invalid_egress_is_ignored_with_error_and_other_rules_stay():
    reconciler = Reconciler()
    good = egress("b", hosts=["b.example.com"])
    first = reconciler.admit([meshconfig(False), HTTPBIN_80, good])
    before = compile_config(first, CURL)
    bad = egress("broken", hosts=["ok.example.com"], ports=[(70000, "http")])
    second = reconciler.admit([meshconfig(False), HTTPBIN_80, good, bad])
    assert any("Egress curl/broken" in e and "ports" in e for e in second.errors), second.errors
    assert compile_config(second, CURL) == before


def test_invalid_edit_keeps_the_last_valid_version_of_that_object():
    reconciler = Reconciler()
    reconciler.admit([meshconfig(False), HTTPBIN_80])
    broken = copy.deepcopy(HTTPBIN_80)
    broken["spec"]["ports"][0]["protocol"] = "ftp"
    snapshot = reconciler.admit([meshconfig(False), broken])
    assert any("httpbin-80" in e for e in snapshot.errors)
    assert compile_config(snapshot, CURL).rules[0].hosts == ("httpbin.org",)
    # deleting it removes it, including the remembered version
    assert compile_config(reconciler.admit([meshconfig(False)]), CURL).mode is Mode.DISABLED


def test_same_input_same_version_and_object_order_is_irrelevant():
    objs = [
        meshconfig(False),
        HTTPBIN_80,
        egress("a", hosts=["z.org", "a.org"]),
        egress("t", ips=["10.0.0.0/8"], ports=[(22, "tcp"), (5432, "tcp")]),
        GLOBAL_GATEWAY,
        GATEWAY_SERVICE,
    ]
    reference = compiled(objs)
    for seed in range(5):
        shuffled = objs[:]
        random.Random(seed).shuffle(shuffled)
        cfg = compiled(shuffled)
        assert cfg == reference
        assert cfg.version == reference.version
        assert build_snapshot(shuffled).version == build_snapshot(objs).version


def test_each_article_state_has_its_own_version():
    states = [
        [meshconfig(False)],
        [meshconfig(True)],
        [meshconfig(False), HTTPBIN_80],
        [meshconfig(True), GLOBAL_GATEWAY, GATEWAY_SERVICE],
        [meshconfig(False), HTTPBIN_80, GLOBAL_GATEWAY, GATEWAY_SERVICE],
    ]
    assert len({compiled(objs).version for objs in states}) == 5


def test_compiled_configs_pass_the_contract_schema():
    cfg = compiled([meshconfig(False), HTTPBIN_80, egress("w", hosts=["*.Example.com."]), GLOBAL_GATEWAY])
    assert ProxyConfig.from_json(cfg.to_json()) == cfg


# --- the same object in two files (issue 10) -------------------------------------------------------


def documents(file: str, *objects) -> list[Document]:
    return [Document(copy.deepcopy(o), file, i, 1 + 20 * (i - 1)) for i, o in enumerate(objects, start=1)]


def hosts(snapshot) -> tuple[str, ...]:
    return tuple(h for r in compile_config(snapshot, CURL).rules for h in r.hosts)


def test_a_newcomer_file_never_replaces_the_object_in_force():
    reconciler = Reconciler()
    live = documents("manifests/b-egress.yaml", egress("httpbin-80", hosts=["httpbin.org"]))
    first = reconciler.admit([*documents("manifests/mc.yaml", meshconfig(False)), *live])
    assert hosts(first) == ("httpbin.org",) and first.errors == ()

    # a file that sorts earlier defines the same Egress with another host
    newcomer = documents("manifests/a-egress.yaml", egress("httpbin-80", hosts=["httpstat.us"]))
    state = [*documents("manifests/mc.yaml", meshconfig(False)), *newcomer, *live]
    second = reconciler.admit(state)
    assert hosts(second) == ("httpbin.org",)
    assert second.errors == (
        "manifests/a-egress.yaml: document 1 (line 1): Egress curl/httpbin-80: metadata.name: is defined "
        "twice: manifests/b-egress.yaml: document 1 (line 1) stays in force, this copy is refused",
    )
    assert hosts(reconciler.admit(state)) == ("httpbin.org",)  # and stays so on the next change

    # the live file drops it: the other copy is the only one left and takes over
    third = reconciler.admit([*documents("manifests/mc.yaml", meshconfig(False)), *newcomer])
    assert hosts(third) == ("httpstat.us",)
    assert third.errors == ()


def test_with_nothing_in_force_the_first_file_wins_and_the_other_is_reported():
    state = [
        *documents("m/a.yaml", meshconfig(False), egress("e", hosts=["a.example.com"])),
        *documents("m/b.yaml", egress("e", hosts=["b.example.com"])),
    ]
    snapshot = Reconciler().admit(state)
    assert hosts(snapshot) == ("a.example.com",)
    assert snapshot.errors == (
        "m/b.yaml: document 1 (line 1): Egress curl/e: metadata.name: is defined twice: "
        "m/a.yaml: document 2 (line 21) stays in force, this copy is refused",
    )


def test_an_invalid_edit_of_the_copy_in_force_keeps_it_and_still_refuses_the_newcomer():
    reconciler = Reconciler()
    reconciler.admit([*documents("m/mc.yaml", meshconfig(False)), *documents("m/b.yaml", HTTPBIN_80)])
    broken = egress("httpbin-80", hosts=["httpbin.org"], ports=[(0, "http")])
    snapshot = reconciler.admit(
        [
            *documents("m/mc.yaml", meshconfig(False)),
            *documents("m/a.yaml", egress("httpbin-80", hosts=["httpstat.us"])),
            *documents("m/b.yaml", broken),
        ]
    )
    assert hosts(snapshot) == ("httpbin.org",)
    assert any("m/a.yaml" in e and "defined twice" in e for e in snapshot.errors)
    assert any("m/b.yaml" in e and "spec.ports[0].number" in e for e in snapshot.errors)


def test_odd_objects_from_a_source_are_reported_and_the_rest_is_admitted():
    odd = [
        {"apiVersion": "policy.openservicemesh.io/v1alpha1", "kind": "Egress", "metadata": "just-a-string"},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": ["x"]}},
        [1, 2],
        "text",
    ]
    snapshot = Reconciler().admit([meshconfig(False), HTTPBIN_80, *odd])
    assert hosts(snapshot) == ("httpbin.org",)
    assert len(snapshot.errors) >= len(odd)
