"""The Docker backend's firewall: the boundary's NetworkPolicies as iptables rules (pure parts), and
how the host chain is written and removed (with a recording runner instead of iptables)."""

from __future__ import annotations

import copy
import subprocess

import pytest

from mesh.controller.boundary import compile_boundary
from mesh.controller.reconciler import Reconciler
from scenarios.clusters import docker_firewall as fw
from scenarios.clusters.docker_firewall import Endpoint, FirewallError, selector_matches, translate
from tests.unit.test_boundary import ARTICLE_GATEWAY_POLICY, egress

C = "EGRESS-MESH-test"
CURL = Endpoint("curl", "curl-1", {"app": "curl"}, ("172.20.0.5", "172.21.0.5"))
GATEWAY = Endpoint(
    "egress-gateway",
    "gw-1",
    {"app": "global-egress-gateway"},
    ("172.20.0.9", "172.21.0.9"),
    {"egress-nat-port": ("TCP", 1080)},
)
CONTROLLER = Endpoint("osm-system", "osm-controller", {"app": "osm-controller"}, ("172.20.0.2",))
PLAIN = Endpoint("plain", "other", {"app": "other"}, ("172.20.0.7",))
NAMESPACES = {
    "curl": {"openservicemesh.io/monitored-by": "osm"},
    "egress-gateway": {},
    "osm-system": {},
    "plain": {},
}


def policies(objects):
    return compile_boundary(Reconciler().admit(copy.deepcopy(objects)), "osm").policies


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


def test_article_gateway_mode_rules_for_every_address_of_the_meshed_pod():
    rules = translate(policies(ARTICLE_GATEWAY_POLICY), [CURL, GATEWAY, CONTROLLER, PLAIN], NAMESPACES, C)
    allowed = [
        "-d 172.20.0.2/32 -p tcp -m tcp --dport 15128",  # controller
        "-d 172.20.0.5/32",  # the mesh's own pods (itself here), any protocol
        "-d 172.21.0.5/32",
        "-d 172.20.0.9/32 -p tcp -m tcp --dport 1080",  # the gateway, on both its networks
        "-d 172.21.0.9/32 -p tcp -m tcp --dport 1080",
    ]  # no kube-dns pods on Docker: the DNS rule matches nothing
    expected = [f"-A {C} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"]
    for address in CURL.addresses:
        expected += [f"-A {C} -s {address}/32 {match} -j RETURN" for match in allowed]
        comment = '-m comment --comment "egress boundary curl/curl-1"'
        expected += [
            f"-A {C} -s {address}/32 -p tcp {comment} -j REJECT --reject-with tcp-reset",
            f"-A {C} -s {address}/32 {comment} -j REJECT --reject-with icmp-port-unreachable",
        ]
    assert rules == expected


def test_nothing_selected_means_no_rules():
    assert translate(policies(ARTICLE_GATEWAY_POLICY), [GATEWAY, CONTROLLER, PLAIN], NAMESPACES, C) == []
    assert translate([], [CURL], NAMESPACES, C) == []


def test_named_target_port_is_resolved_on_each_gateway_pod():
    objects = copy.deepcopy(ARTICLE_GATEWAY_POLICY)
    service = next(o for o in objects if o["kind"] == "Service")
    service["spec"]["ports"][0]["targetPort"] = "egress-nat-port"
    unnamed = Endpoint("egress-gateway", "gw-2", {"app": "global-egress-gateway"}, ("172.20.0.10",))
    rules = translate(policies(objects), [CURL, GATEWAY, unnamed], NAMESPACES, C)
    assert f"-A {C} -s 172.20.0.5/32 -d 172.20.0.9/32 -p tcp -m tcp --dport 1080 -j RETURN" in rules
    assert not any("172.20.0.10" in rule for rule in rules)  # its ports have no such name


def test_passthrough_ip_blocks_and_ports():
    objects = [
        *ARTICLE_GATEWAY_POLICY[:-2],
        egress("db", ips=["10.1.2.3/24", "2001:db8::/64"], ports=(5432, 5433)),
    ]
    rules = translate(policies(objects), [CURL], NAMESPACES, C)
    assert f"-A {C} -s 172.20.0.5/32 -d 10.1.2.0/24 -p tcp -m tcp --dport 5432 -j RETURN" in rules
    assert f"-A {C} -s 172.20.0.5/32 -d 10.1.2.0/24 -p tcp -m tcp --dport 5433 -j RETURN" in rules
    assert not any("2001:db8" in rule for rule in rules)  # no IPv6 on the backend's networks


def test_rules_without_ports_or_peers_and_port_ranges():
    policy = {
        "metadata": {"namespace": "curl", "name": "p"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "curl"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 5000, "endPort": 5010}]},
                {"to": [{"podSelector": {}}]},
            ],
        },
    }
    rules = translate([policy], [CURL, PLAIN], NAMESPACES, C)
    assert rules[1:4] == [
        f"-A {C} -s 172.20.0.5/32 -p udp -m udp --dport 5000:5010 -j RETURN",
        f"-A {C} -s 172.20.0.5/32 -d 172.20.0.5/32 -j RETURN",  # same namespace only
        f"-A {C} -s 172.20.0.5/32 -d 172.21.0.5/32 -j RETURN",
    ]


def test_ingress_only_policies_are_not_egress_rules():
    policy = {"metadata": {"namespace": "curl"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert translate([policy], [CURL], NAMESPACES, C) == []


def test_what_cannot_be_enforced_is_an_error_not_an_open_door():
    with_except = {
        "metadata": {"namespace": "curl"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        },
    }
    with pytest.raises(FirewallError, match="ipBlock.except"):
        translate([with_except], [CURL], NAMESPACES, C)
    v6 = Endpoint("curl", "curl-6", {}, ("fd00::5",))
    with pytest.raises(FirewallError, match="pod curl/curl-6 has the IPv6 address fd00::5"):
        translate(policies(ARTICLE_GATEWAY_POLICY), [v6], NAMESPACES, C)


def test_chain_names_fit_iptables():
    assert fw.chain_name("0123abcd") == "EGRESS-MESH-0123abcd"
    assert len(fw.chain_name("x" * 40)) == 28


class Recorder:
    """Stands in for iptables: answers ``-S`` from what was written, records every command."""

    def __init__(self) -> None:
        self.commands: list[tuple[list[str], str | None]] = []
        self.jump_present = False

    def __call__(self, argv, stdin=None):
        argv = list(argv)
        self.commands.append((argv, stdin))
        code, out = 0, ""
        if "-C" in argv:
            code = 0 if self.jump_present else 1
        elif "-I" in argv:
            self.jump_present = True
        elif argv[-1] == "-S":
            out = "-N DOCKER-USER\n-N EGRESS-MESH-run1\n"
            if self.jump_present:
                out += '-A DOCKER-USER -m comment --comment "egress-mesh run run1" -j EGRESS-MESH-run1\n'
            out += "-A DOCKER-USER -j RETURN\n"
        elif "-D" in argv:
            self.jump_present = False
        return subprocess.CompletedProcess(argv, code, out, "")


@pytest.fixture
def host(monkeypatch, tmp_path):
    bridge = tmp_path / "bridge-nf-call-iptables"
    bridge.write_text("0\n")
    monkeypatch.setattr(fw, "BRIDGE_NF_CALL", bridge)
    monkeypatch.setattr(fw.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fw.shutil, "which", lambda name: f"/usr/sbin/{name}")
    return bridge


def test_apply_writes_the_chain_once_and_the_jump_once(host):
    runner = Recorder()
    firewall = fw.HostFirewall("run1", runner)
    rules = [f"-A {firewall.chain} -s 172.20.0.5/32 -j REJECT"]
    actions = firewall.apply(rules)
    assert host.read_text() == "1\n"  # bridged packets reach iptables
    restore = [stdin for argv, stdin in runner.commands if argv[0] == "iptables-restore"]
    assert restore == [
        "*filter\n:EGRESS-MESH-run1 - [0:0]\n-A EGRESS-MESH-run1 -s 172.20.0.5/32 -j REJECT\nCOMMIT\n"
    ]
    assert actions[0] == "sysctl -w net.bridge.bridge-nf-call-iptables=1"
    assert [
        "iptables",
        "--wait",
        "-I",
        "DOCKER-USER",
        "1",
        "-m",
        "comment",
        "--comment",
        "egress-mesh run run1",
        "-j",
        "EGRESS-MESH-run1",
    ] in [argv for argv, _ in runner.commands]
    count = len(runner.commands)
    assert firewall.apply(list(rules)) == []  # unchanged: nothing run
    assert len(runner.commands) == count
    firewall.apply([*rules, f"-A {firewall.chain} -s 172.20.0.6/32 -j REJECT"])
    assert sum(1 for argv, _ in runner.commands if "-I" in argv) == 1  # the jump stays single


def test_empty_rules_remove_chain_and_jump(host):
    runner = Recorder()
    firewall = fw.HostFirewall("run1", runner)
    firewall.apply([f"-A {firewall.chain} -j RETURN"])
    actions = firewall.apply([])
    assert actions == [
        "iptables --wait -D DOCKER-USER -m comment --comment 'egress-mesh run run1' -j EGRESS-MESH-run1",
        "iptables -F EGRESS-MESH-run1",
        "iptables -X EGRESS-MESH-run1",
    ]
    assert not runner.jump_present
    assert firewall.apply([]) == []


def test_not_root_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fw.os, "geteuid", lambda: 1000)
    firewall = fw.HostFirewall("run1", Recorder())
    with pytest.raises(FirewallError, match="host iptables rules, which needs root"):
        firewall.apply([f"-A {firewall.chain} -j RETURN"])
    assert fw.remove_chains("run1", Recorder()) == []


def test_enforce_compiles_like_the_controller_and_asks_for_pods_only_when_needed(host):
    runner = Recorder()
    firewall = fw.HostFirewall("run1", runner)
    asked = []

    def endpoints():
        asked.append(1)
        return [CURL, GATEWAY, CONTROLLER]

    off = [o for o in ARTICLE_GATEWAY_POLICY if o["kind"] != "MeshConfig"]
    fw.enforce(firewall, off, endpoints, "osm", "osm-system")
    assert asked == []
    actions = fw.enforce(firewall, copy.deepcopy(ARTICLE_GATEWAY_POLICY), endpoints, "osm", "osm-system")
    assert asked == [1]
    assert any(a.startswith("iptables-restore") for a in actions)
    (restore,) = [stdin for argv, stdin in runner.commands if argv[0] == "iptables-restore"]
    assert "-s 172.20.0.5/32 -d 172.20.0.9/32 -p tcp -m tcp --dport 1080 -j RETURN" in restore
    no_service = [o for o in ARTICLE_GATEWAY_POLICY if o["kind"] != "Service"]
    warned = fw.enforce(firewall, copy.deepcopy(no_service), endpoints, "osm", "osm-system")
    assert warned[-1] == (
        "# egress boundary: egress gateway Service egress-gateway/global-egress-gateway does not exist: "
        "the egress boundary lets no pod reach it"
    )


def test_named_ports_of_a_pod_spec():
    spec = {
        "initContainers": [{"name": "sidecar", "ports": [{"name": "health", "containerPort": 15901}]}],
        "containers": [
            {
                "name": "gw",
                "ports": [{"name": "tunnel", "containerPort": 1080, "protocol": "TCP"}, {"containerPort": 9}],
            }
        ],
    }
    assert fw.named_ports(spec) == {"health": ("TCP", 15901), "tunnel": ("TCP", 1080)}
