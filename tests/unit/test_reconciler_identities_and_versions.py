"""Which identities the controller compiles a config for, what the snapshot reports, and when the
config version changes (issue 14, item 8)."""

from __future__ import annotations

import copy
import datetime

import pytest

from mesh.api.proxyconfig import Identity, Mode, Protocol, RequestMatch
from mesh.controller.reconciler import Reconciler, build_snapshot, compile_all, compile_config, object_key
from tests.article import global_egress_gateway, httpbin_80, meshconfig

CURL = Identity("curl", "curl")


def pod(namespace: str | None, spec: dict) -> dict:
    meta = {"name": "p"} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def workload(kind: str, namespace: str, pod_spec: dict | None) -> dict:
    spec = {"template": {"spec": pod_spec}} if pod_spec is not None else {}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "w", "namespace": namespace},
        "spec": spec,
    }


# ---------------------------------------------------------------- identity discovery


@pytest.mark.parametrize(
    "obj, identity",
    [
        (
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "ns"}},
            ("ns", "sa"),
        ),
        ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}, ("default", "sa")),
        (pod("ns", {"serviceAccountName": "runner", "serviceAccount": "old"}), ("ns", "runner")),
        (pod("ns", {"serviceAccount": "legacy"}), ("ns", "legacy")),
        (pod("ns", {}), ("ns", "default")),
        (pod(None, {"serviceAccountName": "runner"}), ("default", "runner")),
        (workload("Deployment", "web", {"serviceAccountName": "frontend"}), ("web", "frontend")),
        (workload("StatefulSet", "db", {}), ("db", "default")),
        (workload("DaemonSet", "ds", {"serviceAccount": "agent"}), ("ds", "agent")),
        (workload("ReplicaSet", "rs", {"serviceAccountName": "r"}), ("rs", "r")),
        (workload("Job", "jobs", {"serviceAccountName": "batch"}), ("jobs", "batch")),
    ],
)
def test_identities_come_from_service_accounts_pods_and_workloads(obj, identity):
    snapshot = Reconciler().admit([obj])
    assert snapshot.identities == (Identity(*identity),)
    assert set(compile_all(snapshot)) == {Identity(*identity)}


def test_workloads_without_a_pod_template_and_other_kinds_name_no_identity():
    broken = workload("Deployment", "odd", None)
    broken["spec"]["template"] = "not-a-mapping"  # not validated: the controller must not die on it
    objs = [
        broken,
        workload("Deployment", "web", None),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}},
    ]
    assert Reconciler().admit(objs).identities == ()


def test_egress_sources_name_identities_sorted():
    egress = httpbin_80()
    egress["spec"]["sources"].insert(0, {"kind": "ServiceAccount", "name": "zeta", "namespace": "a"})
    snapshot = Reconciler().admit([egress, pod("b", {})])
    assert snapshot.identities == (Identity("a", "zeta"), Identity("b", "default"), CURL)


# ---------------------------------------------------------------- what a snapshot reports


def test_snapshot_counts_kinds_and_keeps_namespaces():
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "curl", "labels": {"a": "b"}}}
    snapshot = Reconciler().admit(
        [
            httpbin_80(),
            namespace,
            pod("curl", {}),
            pod("curl", {}) | {"metadata": {"name": "q", "namespace": "curl"}},
        ]
    )
    assert snapshot.counts == (("Egress", 1), ("Namespace", 1), ("Pod", 2))
    assert snapshot.namespace("curl").labels == {"a": "b"}
    assert snapshot.namespace("other") is None


def test_build_snapshot_counts_objects_without_a_kind_under_the_empty_kind():
    assert build_snapshot([{"metadata": {"name": "x"}}]).counts == (("", 1),)


def test_object_key_defaults():
    assert object_key({}) == ("", "", "")
    assert object_key({"kind": "Egress", "metadata": {"name": "a", "namespace": None}}) == ("Egress", "", "a")


def test_the_mesh_config_is_looked_up_where_the_reconciler_is_told():
    mc = meshconfig(True)
    mc["metadata"] = {"name": "mesh", "namespace": "mesh-system"}
    assert compile_config(Reconciler().admit([mc]), CURL).mode is Mode.DISABLED
    reconciler = Reconciler(mesh_namespace="mesh-system", meshconfig_name="mesh")
    assert compile_config(reconciler.admit([mc]), CURL).mode is Mode.PERMISSIVE
    absent = build_snapshot([], mesh_namespace="mesh-system", meshconfig_name="mesh").mesh_config
    assert (absent.namespace, absent.name, absent.enable_egress) == ("mesh-system", "mesh", False)


def test_build_snapshot_normalises_hosts_of_objects_that_skipped_validation():
    egress = httpbin_80()
    egress["spec"]["hosts"] = [" HTTPBin.ORG. ", "*.Example.com."]
    cfg = compile_config(build_snapshot([meshconfig(False), egress]), CURL)
    assert cfg.rules[0].hosts == ("*.example.com", "httpbin.org")


# ---------------------------------------------------------------- compiled rules


def test_disabled_configs_still_carry_the_exclusions():
    mc = meshconfig(False, outboundPortExclusionList=[6379])
    cfg = compile_config(Reconciler().admit([mc]), CURL)
    assert cfg.mode is Mode.DISABLED
    assert cfg.exclusions.ports == (6379,)


def test_request_matches_apply_to_http_rules_only():
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "g", "namespace": "curl"},
        "spec": {"matches": [{"name": "get", "pathRegex": "/get", "methods": ["GET"]}]},
    }
    egress = httpbin_80()
    egress["spec"]["ports"] = [{"number": 80, "protocol": "http"}, {"number": 443, "protocol": "https"}]
    egress["spec"]["matches"] = [
        {"apiGroup": "specs.smi-spec.io/v1alpha4", "kind": "HTTPRouteGroup", "name": "g"}
    ]
    rules = compile_config(Reconciler().admit([meshconfig(False), egress, group]), CURL).rules
    assert [(r.protocol, r.matches, r.restricted) for r in rules] == [
        (Protocol.HTTP, (RequestMatch("/get", ("GET",)),), True),
        (Protocol.HTTPS, (), False),
    ]


def test_rules_are_ordered_by_port_protocol_and_egress_whatever_the_input_order():
    def egress(name: str, *ports: tuple[int, str]) -> dict:
        obj = httpbin_80()
        obj["metadata"]["name"] = name
        obj["spec"]["ipAddresses"] = ["10.0.0.0/8"]
        obj["spec"]["ports"] = [{"number": n, "protocol": p} for n, p in ports]
        return obj

    objs = [
        meshconfig(False),
        egress("b", (443, "https"), (80, "http")),
        egress("a", (443, "tcp"), (80, "http")),
    ]
    for order in (objs, objs[::-1]):
        rules = compile_config(Reconciler().admit(copy.deepcopy(order)), CURL).rules
        assert [(r.port, r.protocol.value, r.egress) for r in rules] == [
            (80, "http", "curl/a"),
            (80, "http", "curl/b"),
            (443, "https", "curl/b"),
            (443, "tcp", "curl/a"),
        ]


# ---------------------------------------------------------------- versions


def version(objs) -> str:
    return build_snapshot(copy.deepcopy(objs)).version


BASE = [meshconfig(False), httpbin_80(), global_egress_gateway()]


def test_the_version_is_16_hex_digits_and_stable():
    assert len(version(BASE)) == 16 and int(version(BASE), 16) >= 0
    assert version(BASE) == version(BASE[::-1])
    reordered = [dict(reversed(list(o.items()))) for o in BASE]  # same objects, keys in another order
    assert version(reordered) == version(BASE)


@pytest.mark.parametrize(
    "extra",
    [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "curl"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "curl"}},
        pod("curl", {"serviceAccountName": "curl"}),
        workload("Deployment", "curl", {}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "curl"}},
    ],
    ids=["ServiceAccount", "Namespace", "Pod", "Deployment", "ConfigMap"],
)
def test_kinds_that_do_not_shape_configs_leave_the_version_alone(extra):
    assert version([*BASE, extra]) == version(BASE)


@pytest.mark.parametrize(
    "extra",
    [
        meshconfig(True) | {"metadata": {"name": "other", "namespace": "x"}},
        httpbin_80() | {"metadata": {"name": "second", "namespace": "curl"}},
        global_egress_gateway() | {"metadata": {"name": "second", "namespace": "egress-gateway"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "x"}},
        {"apiVersion": "specs.smi-spec.io/v1alpha4", "kind": "HTTPRouteGroup", "metadata": {"name": "g"}},
    ],
    ids=["MeshConfig", "Egress", "EgressGateway", "Service", "HTTPRouteGroup"],
)
def test_kinds_that_shape_configs_change_the_version(extra):
    assert version([*BASE, extra]) != version(BASE)


def test_objects_with_non_json_values_from_the_api_still_get_a_version():
    stamped = copy.deepcopy(BASE)
    stamped[1]["metadata"]["creationTimestamp"] = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert version(stamped) == version(stamped) != version(BASE)
