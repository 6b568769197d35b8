"""The Docker backend's pure helpers (no Docker needed)."""

from __future__ import annotations

import pytest

from scenarios.clusters.base import Unsupported
from scenarios.clusters.docker import (
    ContainerSpec,
    kind_of,
    manifest_filename,
    resolve_env,
    selector_matches,
    service_aliases,
    short_name,
    template_hash,
)


@pytest.mark.parametrize(
    "name,kind",
    [
        ("meshconfig", "MeshConfig"),
        ("meshconfigs", "MeshConfig"),
        ("egress", "Egress"),
        ("egresses", "Egress"),
        ("egresses.policy.openservicemesh.io", "Egress"),
        ("EgressGateway", "EgressGateway"),
        ("ns", "Namespace"),
        ("deploy", "Deployment"),
        ("pods", "Pod"),
        ("svc", "Service"),
        ("httproutegroups.specs.smi-spec.io", "HTTPRouteGroup"),
    ],
)
def test_kind_names(name, kind):
    assert kind_of(name) == kind


def test_unknown_kind_is_unsupported():
    with pytest.raises(Unsupported, match="cronjob"):
        kind_of("cronjob")


@pytest.mark.parametrize(
    "selector,expected",
    [
        ("app=curl", True),
        ("app==curl", True),
        ("app=other", False),
        ("app=curl,tier!=db", True),
        ("app=curl,tier=web", True),
        ("tier!=web", False),
        ("app", True),
        ("!app", False),
        ("missing", False),
        ("", True),
    ],
)
def test_selectors(selector, expected):
    assert selector_matches(selector, {"app": "curl", "tier": "web"}) is expected


def test_service_selector_mapping():
    assert selector_matches({"app": "curl"}, {"app": "curl", "x": "y"})
    assert not selector_matches({"app": "curl", "x": "z"}, {"app": "curl", "x": "y"})


def test_service_aliases_cover_every_dns_form():
    assert service_aliases("global-egress-gateway", "egress-gateway") == [
        "global-egress-gateway",
        "global-egress-gateway.egress-gateway",
        "global-egress-gateway.egress-gateway.svc",
        "global-egress-gateway.egress-gateway.svc.cluster.local",
    ]


def test_downward_api_env():
    env = [
        {"name": "A", "value": "1"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    fields = {"status.podIP": "10.0.0.7", "spec.serviceAccountName": "curl"}
    assert resolve_env(env, fields) == ["A=1", "POD_IP=10.0.0.7", "POD_SERVICE_ACCOUNT=curl"]


def test_container_spec_cli_line():
    spec = ContainerSpec(
        name="em-1-curl-x-sidecar",
        image="egress-mesh/proxy:abc",
        entrypoint=["mesh-proxy"],
        command=["run", "--port", "15001"],
        env=["POD_NAMESPACE=curl"],
        user="1500:1500",
        network="container:em-1-curl-x",
    )
    assert spec.cli() == (
        "docker run -d --name em-1-curl-x-sidecar --network container:em-1-curl-x --user 1500:1500 "
        "-e POD_NAMESPACE=curl --entrypoint mesh-proxy egress-mesh/proxy:abc run --port 15001"
    )


def test_kubectl_file_arguments():
    from scenarios.clusters.kubectl import parse

    for argv, expected in [
        (["kubectl", "apply", "-n", "curl", "-f", "x.yaml"], ("x.yaml", "curl")),
        (["kubectl", "apply", "--filename=x.yaml", "--namespace=curl"], ("x.yaml", "curl")),
        (["kubectl", "create", "-f", "x.yaml"], ("x.yaml", None)),
    ]:
        cmd = parse(argv)
        assert (cmd.filename, cmd.namespace) == expected


def test_names():
    assert short_name("egress-mesh/curl:abc") == "curl"
    assert short_name("egress-mesh/proxy") == "proxy"
    assert manifest_filename("Egress", "curl", "httpbin-80") == "egress.curl.httpbin-80.yaml"
    assert manifest_filename("Namespace", "", "curl") == "namespace._.curl.yaml"
    assert template_hash({"a": 1, "b": 2}) == template_hash({"b": 2, "a": 1})
    assert template_hash({"a": 1}) != template_hash({"a": 2})


def test_no_engine_is_a_clear_error(monkeypatch, tmp_path):
    from scenarios import images
    from scenarios.clusters.base import BackendUnavailable
    from scenarios.clusters.docker import DockerCluster

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(BackendUnavailable, match="no Docker engine answers"):
        DockerCluster().up()
    with pytest.raises(images.ImageBuildError, match="no Docker engine answers"):
        images.build_all()
