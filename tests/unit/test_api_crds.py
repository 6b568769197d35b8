"""The CRDs: valid CustomResourceDefinitions for every Kubernetes version we support, structural,
carrying osm-edge's fields and rules; and the schema translation validation relies on."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from mesh.api import crds
from mesh.api.validation import CIDR_PATTERN, to_jsonschema
from mesh.manifests import K8S_VERSIONS


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("crd", crds.crds(), ids=crds.crd_names())
def test_crd_is_a_valid_custom_resource_definition(crd: dict[str, Any], version: str) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    kubernetes_validate.validate(crd, version, strict=True)


def _untyped_nodes(node: dict[str, Any], path: str) -> list[str]:
    """Structural schema rule: every node states its type (unless int-or-string)."""
    found = [] if "type" in node or node.get("x-kubernetes-int-or-string") else [path]
    for name, sub in (node.get("properties") or {}).items():
        found += _untyped_nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _untyped_nodes(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("crd", crds.crds(), ids=crds.crd_names())
def test_crd_schemas_are_structural(crd: dict[str, Any]) -> None:
    for version in crd["spec"]["versions"]:
        assert _untyped_nodes(version["schema"]["openAPIV3Schema"], "") == []


def test_egress_schema_keeps_osm_edge_rules() -> None:
    spec = crds.schema_for("policy.openservicemesh.io/v1alpha1", "Egress")["properties"]["spec"]
    assert set(spec["required"]) == {"sources", "ports"}
    assert set(spec["properties"]) == {"sources", "hosts", "ipAddresses", "ports", "matches"}
    source = spec["properties"]["sources"]["items"]
    assert source["properties"]["kind"]["enum"] == ["ServiceAccount"]
    port = spec["properties"]["ports"]["items"]
    assert (port["properties"]["number"]["minimum"], port["properties"]["number"]["maximum"]) == (1, 65535)
    assert port["properties"]["protocol"]["enum"] == ["http", "https", "tcp"]
    assert spec["properties"]["ipAddresses"]["items"]["pattern"] == CIDR_PATTERN


def test_egress_gateway_schema_has_global_and_rules() -> None:
    spec = crds.schema_for("policy.openservicemesh.io/v1alpha1", "EgressGateway")["properties"]["spec"]
    backend = spec["properties"]["global"]["items"]
    assert set(backend["required"]) == {"service", "namespace"}
    assert "weight" in backend["properties"]
    rule = spec["properties"]["rules"]["items"]
    assert set(rule["required"]) == {"egressPolicies", "egressGateways"}


def test_meshconfig_schema_has_the_egress_switches() -> None:
    spec = crds.schema_for("config.openservicemesh.io/v1alpha2", "MeshConfig")["properties"]["spec"]
    traffic = spec["properties"]["traffic"]["properties"]
    assert traffic["enableEgress"]["type"] == "boolean"
    for name in ("outboundIPRangeExclusionList", "outboundIPRangeInclusionList"):
        assert traffic[name]["items"]["pattern"] == CIDR_PATTERN
    assert spec["properties"]["featureFlags"]["properties"]["enableEgressPolicy"]["type"] == "boolean"


def test_lookup_by_api_version_and_kind() -> None:
    assert crds.crd_for("policy.openservicemesh.io/v1alpha1", "Egress")["metadata"]["name"] == (
        "egresses.policy.openservicemesh.io"
    )
    assert crds.crd_for("policy.openservicemesh.io/v1beta1", "Egress") is None
    assert crds.schema_for("v1", "Service") is None
    assert crds.served_versions("MeshConfig") == ["config.openservicemesh.io/v1alpha2"]


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"type": "string", "nullable": True}, None, 1),
        ({"x-kubernetes-int-or-string": True}, "80%", 1.5),
        ({"type": "object", "properties": {"a": {"type": "integer"}}}, {"a": 1}, {"b": 1}),
        (
            {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"a": {"type": "integer"}},
            },
            {"a": 1, "b": 2},
            {"a": "x"},
        ),
        ({"type": "integer", "minimum": 1, "exclusiveMinimum": True}, 2, 1),
        ({"type": "string", "pattern": CIDR_PATTERN}, "10.0.0.0/8", "10.0.0.0"),
    ],
)
def test_kubernetes_schema_extensions_are_translated(schema: dict[str, Any], good: Any, bad: Any) -> None:
    validator = jsonschema.Draft4Validator(to_jsonschema(schema))
    assert validator.is_valid(good)
    assert not validator.is_valid(bad)
