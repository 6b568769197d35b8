"""Validation rules pinned exactly: the message a user reads for each rule (object, field, words),
the limits at their boundary, the CRD schema translation, and the rules across a set of objects
(issue 14, items 10 and 11)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from mesh.api.load import load_text
from mesh.api.resources import Service
from mesh.api.semantic_rules import host_problem
from mesh.api.validation import (
    InvalidObject,
    Problem,
    check,
    describe,
    key,
    normalize_host,
    to_jsonschema,
    validate_object,
    validate_objects,
)
from tests.article import EGRESS_GATEWAY, EGRESS_HTTPBIN_80

EGRESS = "Egress curl/httpbin-80"
GATEWAY = "EgressGateway egress-gateway/global-egress-gateway"


def egress(**spec: Any) -> dict[str, Any]:
    obj = yaml.safe_load(EGRESS_HTTPBIN_80)
    obj["spec"].update(spec)
    return obj


def gateway(name: str = "global-egress-gateway", **spec: Any) -> dict[str, Any]:
    obj = yaml.safe_load(EGRESS_GATEWAY)
    obj["metadata"]["name"] = name
    obj["spec"].update(spec)
    return obj


def service(name: str = "global-egress-gateway", namespace: str | None = "egress-gateway", **extra) -> dict:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"ports": [{"port": 1080}]},
    } | extra


def problems(obj: Any) -> list[tuple[str, str, str]]:
    return [(p.object, p.field, p.message) for p in validate_object(obj)]


# ---------------------------------------------------------------- messages of the schema rules


@pytest.mark.parametrize(
    "value, got",
    [
        (True, "boolean True"),
        (1.5, "number 1.5"),
        (None, "null None"),
        ("80", "string '80'"),
        ([80], "array [80]"),
        ({"n": 80}, "object {'n': 80}"),
    ],
)
def test_a_wrong_type_names_the_type_it_got(value, got):
    obj = egress(ports=[{"number": value, "protocol": "http"}])
    assert problems(obj) == [(EGRESS, "spec.ports[0].number", f"must be an integer (got {got})")]


def test_a_missing_required_field_is_the_only_one_reported():
    obj = egress()
    del obj["spec"]["ports"]
    assert problems(obj) == [(EGRESS, "spec.ports", "is required")]


def test_an_unknown_field_lists_the_known_ones():
    obj = egress(portz=[])
    assert problems(obj) == [
        (
            EGRESS,
            "spec.portz",
            "is not a known field (known fields: hosts, ipAddresses, matches, ports, sources)",
        )
    ]


def test_a_value_below_a_lone_minimum_says_at_least():
    obj = gateway(
        **{"global": [{"service": "global-egress-gateway", "namespace": "egress-gateway", "weight": -1}]}
    )
    assert problems(obj) == [(GATEWAY, "spec.global[0].weight", "must be at least 0 (got -1)")]


@pytest.mark.parametrize(
    "number, message", [(65535, None), (65536, "must be between 1 and 65535 (got 65536)")]
)
def test_ports_end_at_65535(number, message):
    found = problems(egress(ports=[{"number": number, "protocol": "tcp"}]))
    assert found == ([(EGRESS, "spec.ports[0].number", message)] if message else [])


def test_an_empty_string_must_not_be_empty():
    obj = egress(sources=[{"kind": "ServiceAccount", "name": "", "namespace": "curl"}])
    assert problems(obj) == [(EGRESS, "spec.sources[0].name", "must not be empty")]


def test_a_value_of_another_type_and_a_host_over_the_schema_length():
    obj = egress(hosts=[3, "a" * 254])
    assert problems(obj) == [
        (EGRESS, "spec.hosts[0]", "must be a string (got integer 3)"),
        (EGRESS, "spec.hosts[1]", f"'{'a' * 254}' is too long"),
    ]


def test_problems_come_in_field_order_not_in_schema_order():
    obj = egress(sources=[{"kind": "Pod", "name": "curl", "namespace": "curl"}])
    obj["spec"]["ports"][0]["number"] = 0  # the schema lists sources before ports
    assert [field for _, field, _ in problems(obj)] == ["spec.ports[0].number", "spec.sources[0].kind"]


def test_problems_come_in_field_order():
    obj = egress(ports=[{"number": 0, "protocol": "udp"}], hosts=["ok.example", 3], ipAddresses=["x"])
    assert [field for _, field, _ in problems(obj)] == [
        "spec.hosts[1]",
        "spec.ipAddresses[0]",
        "spec.ports[0].number",
        "spec.ports[0].protocol",
    ]


# ---------------------------------------------------------------- hosts (item 10: 253 and 63)


def name_of(length: int, label: int = 62) -> str:
    """A host name of ``length`` characters whose labels are at most ``label`` long."""
    labels = ["a" * label] * ((length - 1) // (label + 1))
    return ".".join([*labels, "b" * (length - (label + 1) * len(labels))])


@pytest.mark.parametrize(
    "host, message",
    [
        (name_of(253), None),
        (name_of(254), "must be at most 253 characters (got 254)"),
        ("*." + name_of(251), None),
        ("a" * 63 + ".example", None),
        ("a" * 64 + ".example", "must be a DNS name: labels of letters"),
        ("*.a.com", None),
        ("", "must be a host name (got an empty value)"),
        ("  ", "must be a host name (got an empty value)"),
        (" a.com", "must be a host name without spaces (got ' a.com')"),
        ("a .com", "must be a host name without spaces (got 'a .com')"),
        ("ftp://a.com", "must be a host name, not a URL: drop 'ftp://' (got 'ftp://a.com')"),
        ("http://a.com://b", "must be a host name, not a URL: drop 'http://' (got 'http://a.com://b')"),
        ("[::1]", "is an IP address; list addresses in spec.ipAddresses as CIDR, e.g. ::1/32"),
        ("10.1.2.3", "is an IP address; list addresses in spec.ipAddresses as CIDR, e.g. 10.1.2.3/32"),
        ("X10.1.2.3", None),  # a name whose labels are digits, not an address
        ("*.", "a bare '*' is not a host; set MeshConfig spec.traffic.enableEgress for permissive egress"),
        ("*", "a bare '*' is not a host; set MeshConfig spec.traffic.enableEgress for permissive egress"),
        (
            "a*.example.com",
            "may use '*' only as the whole first label, as in *.example.com (got 'a*.example.com')",
        ),
        ("*.*", "may use '*' only as the whole first label"),
        (
            "-a.com",
            "must be a DNS name: labels of letters, digits and '-', 1-63 characters, not starting or "
            "ending with '-' (label '-a' in '-a.com')",
        ),
    ],
)
def test_host_rules_and_their_messages(host, message):
    why = host_problem(host)
    assert (why is None) if message is None else why is not None and why.startswith(message), why


@pytest.mark.parametrize(
    "host, normal",
    [("WWW.BOX.", "www.box"), ("*.Bücher.de", "*.xn--bcher-kva.de"), ("Bücher.de.", "xn--bcher-kva.de")],
)
def test_hosts_are_normalised_to_lower_case_ascii_without_the_trailing_dot(host, normal):
    assert normalize_host(host) == normal
    assert check(egress(hosts=[host]))["spec"]["hosts"] == [normal]


# ---------------------------------------------------------------- metadata (names 253, namespaces 63)


@pytest.mark.parametrize(
    "meta, expected",
    [
        ({"name": "a" * 253, "namespace": "curl"}, []),
        (
            {"name": "a" * 254, "namespace": "curl"},
            [
                (
                    "Egress curl/" + "a" * 254,
                    "metadata.name",
                    "must be lower-case letters, digits, '-' and '.', starting and ending with a letter or "
                    f"digit, at most 253 characters (got {'a' * 254!r})",
                )
            ],
        ),
        ({"name": "x", "namespace": "n" * 63}, []),
        (
            {"name": "x", "namespace": "n" * 64},
            [
                (
                    f"Egress {'n' * 64}/x",
                    "metadata.namespace",
                    f"must be a DNS label (lower case, at most 63) (got {'n' * 64!r})",
                )
            ],
        ),
        ({"namespace": "curl"}, [("Egress curl/?", "metadata.name", "is required")]),
    ],
)
def test_metadata_name_and_namespace_limits(meta, expected):
    obj = egress()
    obj["metadata"] = meta
    assert problems(obj) == expected


def test_metadata_that_is_not_a_mapping():
    obj = egress()
    obj["metadata"] = "httpbin-80"
    assert problems(obj) == [
        ("Egress ?", "metadata", "is required (with at least metadata.name)"),
        ("Egress ?", "metadata", "must be a mapping (got string 'httpbin-80')"),
    ]


# ---------------------------------------------------------------- semantic rules of each kind


def test_cidrs_with_host_bits_are_accepted_as_their_network():
    assert problems(egress(ipAddresses=["10.1.2.3/8", "2001:db8::1/32"])) == []


def test_meshconfig_exclusion_and_inclusion_cidrs_are_checked():
    mc = {
        "apiVersion": "config.openservicemesh.io/v1alpha2",
        "kind": "MeshConfig",
        "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
        "spec": {
            "traffic": {
                "outboundIPRangeExclusionList": ["10.0.0.0/8"],
                "outboundIPRangeInclusionList": ["10.0.0.0/8", "10.0.0.0/33"],
            }
        },
    }
    assert problems(mc) == [
        (
            "MeshConfig osm-system/osm-mesh-config",
            "spec.traffic.outboundIPRangeInclusionList[1]",
            "is not a valid CIDR: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        )
    ]
    mc["spec"]["traffic"] = "all"
    assert [f for _, f, _ in problems(mc)] == ["spec.traffic"]


def test_egress_matches_must_reference_a_known_kind():
    obj = egress(matches=[{"apiGroup": "x.io/v1", "kind": "Thing", "name": "t"}])
    assert problems(obj) == [
        (
            EGRESS,
            "spec.matches[0]",
            "must reference specs.smi-spec.io/v1alpha4 HTTPRouteGroup or "
            "policy.openservicemesh.io/v1alpha1 UpstreamTrafficSetting (got x.io/v1 Thing)",
        )
    ]


def test_every_route_group_entry_is_checked_after_a_malformed_one():
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "g", "namespace": "curl"},
        "spec": {"matches": ["not-a-mapping", {"name": "b", "methods": ["FETCH"]}]},
    }
    assert [(f, m) for _, f, m in problems(group)][1:] == [
        (
            "spec.matches[1].methods[0]",
            "must be '*' or one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH "
            "(got 'FETCH')",
        )
    ]


def test_rule_gateway_backends_must_name_services():
    obj = gateway(
        rules=[
            {
                "egressPolicies": [{"name": "httpbin-80", "namespace": "curl"}],
                "egressGateways": [{"service": "Bad_Name", "namespace": "egress-gateway"}],
            }
        ]
    )
    assert problems(obj) == [
        (
            GATEWAY,
            "spec.rules[0].egressGateways[0].service",
            "must be a Service name (lower case letters, digits and '-', starting with a letter) "
            "(got 'Bad_Name')",
        )
    ]


# ---------------------------------------------------------------- kinds, documents, sources


def test_an_osm_kind_under_the_wrong_osm_group_is_not_served():
    obj = egress()
    obj["apiVersion"] = "config.openservicemesh.io/v1alpha2"
    assert problems(obj) == [
        (
            EGRESS,
            "apiVersion",
            "config.openservicemesh.io/v1alpha2 is not served; use policy.openservicemesh.io/v1alpha1",
        )
    ]


def test_a_kind_named_like_ours_in_another_group_passes_through():
    obj = egress(anything="goes")
    obj["apiVersion"] = "example.com/v1"
    assert problems(obj) == []


def test_non_mappings_and_objects_without_apiversion_or_kind():
    assert [str(p) for p in validate_object([1], "f.yaml")] == [
        "f.yaml: document: must be a mapping (got array)"
    ]
    assert [str(p) for p in validate_object((1,))] == ["document: must be a mapping (got tuple)"]
    assert validate_object([1])[0].field == ""
    assert [str(p) for p in validate_object({"kind": "Egress", "metadata": {"name": "a"}}, "f.yaml")] == [
        "f.yaml: Egress a: apiVersion: is required: this is not a Kubernetes object"
    ]


def test_problem_and_invalid_object_messages():
    bad = egress(ports=[{"number": 0, "protocol": "http"}], hosts=["http://x"])
    with pytest.raises(InvalidObject) as raised:
        check(bad)
    assert str(raised.value) == (  # schema rules first, then the rules a schema cannot express
        f"{EGRESS}: spec.ports[0].number: must be between 1 and 65535 (got 0)\n"
        f"{EGRESS}: spec.hosts[0]: must be a host name, not a URL: drop 'http://' (got 'http://x')"
    )
    assert [p.field for p in raised.value.problems] == ["spec.ports[0].number", "spec.hosts[0]"]
    assert str(Problem("document", "", "must be a mapping")) == "document: must be a mapping"
    with pytest.raises(InvalidObject, match=r"^f\.yaml: Egress curl/httpbin-80: spec\.ports"):
        check(bad, "f.yaml")


def test_describe_and_key_name_objects():
    assert describe({"kind": "Namespace", "metadata": {"name": "curl"}}) == "Namespace curl"
    assert describe({"kind": "Egress", "metadata": {"namespace": "curl"}}) == "Egress curl/?"
    assert describe({"kind": "Egress", "metadata": "x"}) == "Egress ?"
    assert key({"kind": "Egress", "metadata": {"name": "a", "namespace": None}}) == ("Egress", "", "a")
    assert key({}) == ("", "", "")
    assert key({"kind": "Egress", "metadata": {"name": "a", "namespace": "curl"}}) == ("Egress", "curl", "a")


def test_objects_without_hosts_and_other_kinds_with_hosts_are_kept_as_given():
    no_hosts = egress(ipAddresses=["10.0.0.0/8"])
    del no_hosts["spec"]["hosts"]
    assert check(no_hosts) == no_hosts
    entry = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "e"}}
    entry["spec"] = {"hosts": ["API.Example.COM."]}
    assert check(entry) == entry


# ---------------------------------------------------------------- sets of objects (item 11)


def test_only_core_v1_services_count_as_services():
    knative = service() | {"apiVersion": "serving.knative.dev/v1"}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}
    assert validate_objects([gateway(), config_map]).ok  # no Services known: not checked
    assert validate_objects([gateway(), knative]).ok


@pytest.mark.parametrize(
    "known",
    [
        ["egress-gateway/global-egress-gateway"],
        [("egress-gateway", "global-egress-gateway")],
        [Service("global-egress-gateway", "egress-gateway")],
        [service()],
    ],
    ids=["text", "tuple", "Service", "dict"],
)
def test_known_services_in_every_form(known):
    assert validate_objects([gateway()], services=known).ok
    other = copy.deepcopy(gateway())
    other["spec"]["global"][0]["namespace"] = "default"
    assert not validate_objects([other], services=known).ok


def test_a_service_without_namespace_is_in_default():
    other = gateway()
    other["spec"]["global"][0]["namespace"] = "default"
    assert validate_objects([other], services=[service(namespace=None)]).ok


def test_rule_backends_must_exist_too_and_problems_carry_the_source():
    rules = gateway("rules")
    rules["spec"] = {
        "rules": [
            {
                "egressPolicies": [{"name": "httpbin-80", "namespace": "curl"}],
                "egressGateways": [{"service": "missing", "namespace": "egress-gateway"}],
            }
        ]
    }
    text = yaml.safe_dump(rules)
    result = validate_objects(load_text(text, "gw.yaml"), services=[])
    assert [str(p) for p in result.problems] == [
        "gw.yaml: document 1 (line 1): EgressGateway egress-gateway/rules: spec.rules[0].egressGateways[0]: "
        "gateway Service egress-gateway/missing does not exist"
    ]


def test_a_duplicate_is_reported_where_it_is():
    result = validate_objects(load_text(EGRESS_HTTPBIN_80 + "---\n" + EGRESS_HTTPBIN_80, "twice.yaml"))
    assert str(result.problems[0]).startswith("twice.yaml: document 2 (line 17): Egress curl/httpbin-80: ")


def test_rules_that_are_not_mappings_are_schema_errors_only():
    obj = gateway(rules=["not-a-mapping"])
    assert [field for _, field, _ in problems(obj)] == ["spec.rules[0]"]


def test_a_duplicate_without_source_and_the_objects_after_it():
    result = validate_objects([egress(), egress(), gateway()], services=[service()])
    assert [str(p) for p in result.problems] == [f"{EGRESS}: metadata.name: is defined twice"]
    assert [o["kind"] for o in result.valid] == ["Egress", "EgressGateway"]


def test_a_timestamped_global_gateway_is_older_than_one_without():
    stamped = gateway("stamped")
    stamped["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    text = yaml.safe_dump(gateway("unstamped")) + "---\n" + yaml.safe_dump(stamped)
    result = validate_objects(load_text(text, "gws.yaml"))
    assert [o["metadata"]["name"] for o in result.valid] == ["stamped"]
    assert [str(p) for p in result.problems] == [
        "gws.yaml: document 1 (line 1): EgressGateway egress-gateway/unstamped: spec.global: only one global "
        "egress gateway is allowed in the cluster; EgressGateway egress-gateway/stamped already defines it"
    ]


# ---------------------------------------------------------------- the CRD schema as JSON Schema


def test_openapi_schema_translates_to_strict_json_schema():
    node = {
        "type": "object",
        "description": "d",
        "default": {},
        "example": {},
        "x-kubernetes-map-type": "atomic",
        "required": ["description"],
        "properties": {
            "description": {"type": "string", "format": "hostname"},
            "properties": {"type": "string", "nullable": True},
            "first": {"nullable": True, "type": "integer", "minimum": 1},
            "intOrString": {"x-kubernetes-int-or-string": True},
            "nullable": {"nullable": True, "description": "no type"},
            "port": {"x-kubernetes-int-or-string": True, "type": "integer"},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {}}},
            "open": {"type": "object", "properties": {}, "additionalProperties": True},
            "bare": {"type": "object"},
            "choice": {
                "allOf": [{"type": "object", "properties": {}}],
                "anyOf": [{"type": "object", "properties": {}}],
                "oneOf": [{"type": "object", "properties": {}}],
                "not": {"type": "object", "properties": {}},
            },
        },
    }
    strict = {"type": "object", "properties": {}, "additionalProperties": False}
    assert to_jsonschema(node) == {
        "type": "object",
        "required": ["description"],
        "properties": {
            "description": {"type": "string"},
            "properties": {"type": ["string", "null"]},
            "first": {"type": ["integer", "null"], "minimum": 1},
            "intOrString": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "nullable": {},
            "port": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "list": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
            "free": {"type": "object", "properties": {}},
            "map": {"type": "object", "additionalProperties": strict},
            "open": {"type": "object", "properties": {}, "additionalProperties": True},
            "bare": {"type": "object"},
            "choice": {"allOf": [strict], "anyOf": [strict], "oneOf": [strict], "not": strict},
        },
        "additionalProperties": False,
    }
