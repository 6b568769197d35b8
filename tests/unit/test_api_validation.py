"""Validation of mesh objects: the article's manifests pass verbatim, broken ones are refused with
messages naming the object, the field and the rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.api.load import load_text, merge_patch
from mesh.api.resources import Egress, EgressGateway, MeshConfig
from mesh.api.validation import InvalidObject, check, normalize_host, validate_object, validate_objects
from mesh.manifests.install import default_meshconfig
from tests.article import EGRESS_GATEWAY, EGRESS_HTTPBIN_80

GATEWAY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "global-egress-gateway", "namespace": "egress-gateway"},
    "spec": {"ports": [{"port": 1080}]},
}


def egress(**spec: Any) -> dict[str, Any]:
    obj = yaml.safe_load(EGRESS_HTTPBIN_80)
    obj["spec"].update(spec)
    return obj


def gateway(
    name: str = "global-egress-gateway", namespace: str = "egress-gateway", **meta: Any
) -> dict[str, Any]:
    obj = yaml.safe_load(EGRESS_GATEWAY)
    obj["metadata"].update(name=name, namespace=namespace, **meta)
    return obj


def messages(obj: Any) -> list[str]:
    return [str(p) for p in validate_object(obj)]


def test_article_egress_is_valid_and_typed() -> None:
    obj = yaml.safe_load(EGRESS_HTTPBIN_80)
    assert validate_object(obj) == []
    typed = Egress.from_object(check(obj))
    assert typed.hosts == ("httpbin.org",)
    assert [(p.number, p.protocol) for p in typed.ports] == [(80, "http")]


def test_article_gateway_is_valid_with_its_service() -> None:
    result = validate_objects([yaml.safe_load(EGRESS_GATEWAY)], services=[GATEWAY_SERVICE])
    assert result.problems == []
    assert EgressGateway.from_object(result.valid[0]).global_[0].service == "global-egress-gateway"


@pytest.mark.parametrize("enable", [True, False])
def test_article_meshconfig_patches_apply_to_the_default(enable: bool) -> None:
    patch = {"spec": {"traffic": {"enableEgress": enable}}}  # kubectl patch ... --type=merge
    patched = merge_patch(default_meshconfig(enable_egress=not enable), patch)
    assert validate_object(patched) == []
    assert MeshConfig.from_object(patched).enable_egress is enable
    assert patched["spec"]["featureFlags"] == {"enableEgressPolicy": True}  # the rest is untouched


INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "missing sources",
        {k: v for k, v in egress().items() if k != "spec"}
        | {"spec": {"ports": [{"number": 80, "protocol": "http"}]}},
        "Egress curl/httpbin-80: spec.sources: is required",
    ),
    (
        "missing ports",
        {k: v for k, v in egress().items() if k != "spec"}
        | {"spec": {"sources": [{"kind": "ServiceAccount", "name": "a", "namespace": "b"}]}},
        "Egress curl/httpbin-80: spec.ports: is required",
    ),
    (
        "port 0",
        egress(ports=[{"number": 0, "protocol": "http"}]),
        "Egress curl/httpbin-80: spec.ports[0].number: must be between 1 and 65535 (got 0)",
    ),
    (
        "port 70000",
        egress(ports=[{"number": 80, "protocol": "http"}, {"number": 70000, "protocol": "tcp"}]),
        "Egress curl/httpbin-80: spec.ports[1].number: must be between 1 and 65535 (got 70000)",
    ),
    (
        "port as string",
        egress(ports=[{"number": "80", "protocol": "http"}]),
        "Egress curl/httpbin-80: spec.ports[0].number: must be an integer (got string '80')",
    ),
    (
        "protocol udp",
        egress(ports=[{"number": 53, "protocol": "udp"}]),
        "Egress curl/httpbin-80: spec.ports[0].protocol: must be one of http, https, tcp (got 'udp')",
    ),
    (
        "source kind Pod",
        egress(sources=[{"kind": "Pod", "name": "curl", "namespace": "curl"}]),
        "Egress curl/httpbin-80: spec.sources[0].kind: must be one of ServiceAccount (got 'Pod')",
    ),
    (
        "empty sources",
        egress(sources=[]),
        "Egress curl/httpbin-80: spec.sources: must list at least 1 item(s)",
    ),
    (
        "empty hosts on an http port (issue 10: it allowed nothing, silently)",
        egress(hosts=[]),
        "Egress curl/httpbin-80: spec.hosts: must list at least one host: an empty list allows no host",
    ),
    (
        "CIDR without prefix",
        egress(ipAddresses=["10.0.0.1"]),
        "Egress curl/httpbin-80: spec.ipAddresses[0]: must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32 "
        "(got '10.0.0.1')",
    ),
    (
        "CIDR that does not parse",
        egress(ipAddresses=["300.1.2.3/8"]),
        "Egress curl/httpbin-80: spec.ipAddresses[0]: is not a valid CIDR",
    ),
    (
        "CIDR prefix too long",
        egress(ipAddresses=["10.0.0.0/40"]),
        "Egress curl/httpbin-80: spec.ipAddresses[0]: is not a valid CIDR",
    ),
    (
        "host given as URL",
        egress(hosts=["http://x"]),
        "Egress curl/httpbin-80: spec.hosts[0]: must be a host name, not a URL: drop 'http://' (got 'http://x')",
    ),
    (
        "wildcard in the middle",
        egress(hosts=["httpbin.org", "*.*.x"]),
        "Egress curl/httpbin-80: spec.hosts[1]: may use '*' only as the whole first label, as in "
        "*.example.com (got '*.*.x')",
    ),
    (
        "partial wildcard label",
        egress(hosts=["api*.example.com"]),
        "spec.hosts[0]: may use '*' only as the whole first label",
    ),
    ("bare wildcard", egress(hosts=["*"]), "spec.hosts[0]: a bare '*' is not a host"),
    ("host with port", egress(hosts=["httpbin.org:80"]), "spec.hosts[0]: must not carry a port"),
    (
        "host with path",
        egress(hosts=["httpbin.org/get"]),
        "spec.hosts[0]: must be a host name without a path",
    ),
    (
        "IP literal host",
        egress(hosts=["1.2.3.4"]),
        "spec.hosts[0]: is an IP address; list addresses in spec.ipAddresses",
    ),
    ("label starting with -", egress(hosts=["-bad.example.com"]), "spec.hosts[0]: must be a DNS name"),
    ("underscore", egress(hosts=["my_host.example.com"]), "spec.hosts[0]: must be a DNS name"),
    ("label too long", egress(hosts=["a" * 64 + ".com"]), "spec.hosts[0]: must be a DNS name"),
    (
        "typo in a field",
        egress(host=["httpbin.org"]),
        "Egress curl/httpbin-80: spec.host: is not a known field",
    ),
    (
        "unknown apiVersion",
        egress() | {"apiVersion": "policy.openservicemesh.io/v1alpha2"},
        "Egress curl/httpbin-80: apiVersion: policy.openservicemesh.io/v1alpha2 is not served; "
        "use policy.openservicemesh.io/v1alpha1",
    ),
    (
        "bad object name",
        egress() | {"metadata": {"name": "Httpbin_80", "namespace": "curl"}},
        "Egress curl/Httpbin_80: metadata.name: must be lower-case letters",
    ),
    (
        "MeshConfig exclusion CIDR",
        merge_patch(
            default_meshconfig(), {"spec": {"traffic": {"outboundIPRangeExclusionList": ["10.0.0.0/33"]}}}
        ),
        "MeshConfig osm-system/osm-mesh-config: spec.traffic.outboundIPRangeExclusionList[0]: "
        "is not a valid CIDR",
    ),
    (
        "MeshConfig enableEgress as string",
        merge_patch(default_meshconfig(), {"spec": {"traffic": {"enableEgress": "yes"}}}),
        "MeshConfig osm-system/osm-mesh-config: spec.traffic.enableEgress: must be true or false "
        "(got string 'yes')",
    ),
    (
        "gateway without namespace",
        merge_patch(gateway(), {"spec": {"global": [{"service": "global-egress-gateway"}]}}),
        "EgressGateway egress-gateway/global-egress-gateway: spec.global[0].namespace: is required",
    ),
    (
        "gateway service not a Service name",
        merge_patch(
            gateway(), {"spec": {"global": [{"service": "Global.GW", "namespace": "egress-gateway"}]}}
        ),
        "EgressGateway egress-gateway/global-egress-gateway: spec.global[0].service: must be a Service name",
    ),
    ("not a Kubernetes object", {"spec": {}}, "document: apiVersion: is required"),
]


@pytest.mark.parametrize(("obj", "expected"), [(o, e) for _, o, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_objects_are_refused_with_a_clear_message(obj: dict[str, Any], expected: str) -> None:
    found = messages(obj)
    assert any(expected in m for m in found), found
    with pytest.raises(InvalidObject, match="."):
        check(obj)


def test_every_problem_is_reported_not_only_the_first() -> None:
    obj = egress(hosts=["http://x"], ports=[{"number": 0, "protocol": "udp"}])
    fields = {p.field for p in validate_object(obj)}
    assert fields == {"spec.hosts[0]", "spec.ports[0].number", "spec.ports[0].protocol"}


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("HttpBin.ORG", "httpbin.org"),
        ("httpbin.org.", "httpbin.org"),
        ("*.Example.com", "*.example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_hosts_are_accepted_and_normalised(host: str, normal: str) -> None:
    obj = egress(hosts=[host])
    assert validate_object(obj) == []
    assert check(obj)["spec"]["hosts"] == [normal]
    assert normalize_host(host) == normal
    assert obj["spec"]["hosts"] == [host]  # the caller's object is not modified


def test_ipv6_and_ipv4_cidrs_are_accepted() -> None:
    assert validate_object(egress(ipAddresses=["10.0.0.0/8", "2001:db8::/32", "1.2.3.4/32"])) == []


def test_only_one_global_gateway_the_oldest_wins() -> None:
    newer = gateway("second", "egress-gateway", creationTimestamp="2026-01-02T00:00:00Z")
    older = gateway("first", "other", creationTimestamp="2026-01-01T00:00:00Z")
    result = validate_objects([newer, older])
    assert [o["metadata"]["name"] for o in result.valid] == ["first"]
    assert [str(p) for p in result.problems] == [
        "EgressGateway egress-gateway/second: spec.global: only one global egress gateway is allowed in the "
        "cluster; EgressGateway other/first already defines it"
    ]


def test_without_timestamps_the_first_global_gateway_wins() -> None:
    result = validate_objects([gateway("a"), gateway("b")])
    assert [o["metadata"]["name"] for o in result.valid] == ["a"]
    assert "EgressGateway egress-gateway/b: spec.global: only one global" in str(result.problems[0])


def test_a_gateway_with_rules_only_is_not_global() -> None:
    rules = gateway("per-policy")
    rules["spec"] = {
        "rules": [
            {
                "egressPolicies": [{"name": "httpbin-80", "namespace": "curl"}],
                "egressGateways": [
                    {"service": "global-egress-gateway", "namespace": "egress-gateway", "weight": 1}
                ],
            }
        ]
    }
    result = validate_objects([gateway(), rules], services=[GATEWAY_SERVICE])
    assert result.ok, result.problems
    assert len(result.valid) == 2


def test_gateway_service_must_exist_when_services_are_known() -> None:
    result = validate_objects([yaml.safe_load(EGRESS_GATEWAY)], services=[("egress-gateway", "other")])
    assert result.valid == []
    assert [str(p) for p in result.problems] == [
        "EgressGateway egress-gateway/global-egress-gateway: spec.global[0]: gateway Service "
        "egress-gateway/global-egress-gateway does not exist"
    ]


def test_services_in_the_set_count_and_other_kinds_pass_through() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw", "namespace": "x"}}
    result = validate_objects([yaml.safe_load(EGRESS_GATEWAY), GATEWAY_SERVICE, deployment])
    assert result.ok, result.problems
    assert [o["kind"] for o in result.valid] == ["EgressGateway", "Service", "Deployment"]
    # the Services in the set are the ones that exist: with another one only, the gateway's is missing
    other = merge_patch(GATEWAY_SERVICE, {"metadata": {"name": "other"}})
    result = validate_objects([yaml.safe_load(EGRESS_GATEWAY), other, deployment])
    assert [o["kind"] for o in result.valid] == ["Service", "Deployment"]
    assert "gateway Service egress-gateway/global-egress-gateway does not exist" in str(result.problems[0])
    result = validate_objects([yaml.safe_load(EGRESS_GATEWAY), deployment], services=["egress-gateway/x"])
    assert "does not exist" in str(result.problems[0])


def test_problems_carry_the_file_and_document_position() -> None:
    text = (  # a blank line opens each document: it counts towards the line number
        "\n"
        + EGRESS_HTTPBIN_80
        + "---\n\n"
        + EGRESS_HTTPBIN_80.replace("number: 80", "number: 0").replace("httpbin-80", "bad")
    )
    result = validate_objects(load_text(text, "policies.yaml"))
    assert [o["metadata"]["name"] for o in result.valid] == ["httpbin-80"]
    assert str(result.problems[0]).startswith(
        "policies.yaml: document 2 (line 19): Egress curl/bad: spec.ports[0].number: "
        "must be between 1 and 65535"
    )


def test_the_same_object_twice_is_reported() -> None:
    result = validate_objects(load_text(EGRESS_HTTPBIN_80 + "---\n" + EGRESS_HTTPBIN_80, "twice.yaml"))
    assert len(result.valid) == 1
    assert "metadata.name: is defined twice (first in twice.yaml: document 1" in str(result.problems[0])


def test_a_bad_edit_keeps_the_last_good_version() -> None:
    good = check(yaml.safe_load(EGRESS_HTTPBIN_80))
    bad = copy.deepcopy(good)
    bad["spec"]["ports"][0]["number"] = 0
    other = egress() | {"metadata": {"name": "new", "namespace": "curl"}}
    result = validate_objects([bad, other], previous=[good])
    assert result.valid == [good, check(other)]
    assert "spec.ports[0].number" in str(result.problems[0])
    # a bad object with no earlier version just stays out
    result = validate_objects([bad], previous=[])
    assert result.valid == []


# --- odd shapes never break the validator (issue 10) ----------------------------------------------

ODD_OBJECTS = [
    {"apiVersion": "policy.openservicemesh.io/v1alpha1", "kind": "Egress", "metadata": "just-a-string"},
    {"apiVersion": "v1", "kind": "Service", "metadata": ["a", "list"]},
    {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "Egress",
        "metadata": {"name": 7},
        "spec": 3,
    },
    {"apiVersion": ["x"], "kind": {"a": 1}, "metadata": {"name": "n"}},
    {1: 2, "kind": "EgressGateway", "apiVersion": "policy.openservicemesh.io/v1alpha1", "metadata": {}},
    [1, 2, 3],
    "text",
    None,
]


@pytest.mark.parametrize("odd", ODD_OBJECTS, ids=[f"odd{i}" for i in range(len(ODD_OBJECTS))])
def test_odd_objects_are_problems_not_exceptions(odd: Any) -> None:
    good = egress()
    result = validate_objects([odd, good], previous=[egress()])
    assert result.problems and result.valid == [good]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
mesh_like = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(
            ["policy.openservicemesh.io/v1alpha1", "config.openservicemesh.io/v1alpha2", "v1", "x"]
        ),
        "kind": st.sampled_from(["Egress", "EgressGateway", "MeshConfig", "HTTPRouteGroup", "Service"]),
    },
    optional={"metadata": json_values, "spec": json_values},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mesh_like | json_values, max_size=4))
def test_validate_objects_never_raises(objects: list[Any]) -> None:
    result = validate_objects(objects)
    assert len(result.valid) <= len(objects)
