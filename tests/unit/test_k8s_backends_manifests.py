"""Sample and stand-in manifests against the Kubernetes JSON schemas of every CI matrix version."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scenarios.clusters import coredns

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "scenarios" / "manifests").glob("*.yaml"))
WORKFLOW = ROOT / ".github" / "workflows" / "e2e.yml"


def matrix_versions() -> list[str]:
    """The workflow's Kubernetes minors as versions kubernetes-validate has schemas for."""
    minors = yaml.safe_load(WORKFLOW.read_text())["jobs"]["kubernetes"]["strategy"]["matrix"]["k8s"]
    return [f"{minor}.0" for minor in minors]


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("version", matrix_versions())
@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_is_valid_for_every_matrix_version(path, version):
    assert version.rsplit(".", 1)[0] <= kubernetes_validate.utils.latest_version().rsplit(".", 1)[0]
    for doc in _documents(path):
        if doc.get("apiVersion", "").split("/")[0].endswith("openservicemesh.io"):
            continue  # custom resources: validated by meshctl's CRD schemas (tests/unit/test_api_*)
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_is_refused_so_the_check_can_fail():
    broken = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "80"}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, matrix_versions()[-1], strict=True)


def test_each_external_name_has_its_own_standin_on_80_and_443_outside_the_mesh():
    docs = _documents(ROOT / "scenarios" / "manifests" / "standins.yaml")
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    namespace = by_kind[("Namespace", coredns.STANDIN_NAMESPACE)]
    assert "openservicemesh.io/monitored-by" not in (namespace["metadata"].get("labels") or {})
    selected = set()
    for host, service in coredns.STANDIN_HOSTS.items():
        svc = by_kind[("Service", service)]
        assert {80, 443} <= {p["port"] for p in svc["spec"]["ports"]}
        assert svc["metadata"]["namespace"] == coredns.STANDIN_NAMESPACE
        [deployment] = [
            d
            for d in docs
            if d["kind"] == "Deployment"
            and all(
                d["spec"]["template"]["metadata"]["labels"].get(k) == v
                for k, v in svc["spec"]["selector"].items()
            )
        ]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "egress-mesh/standin"
        assert container["command"][-2:] == ["--name", host]  # it answers with X-Standin: HOST
        selected.add(deployment["metadata"]["name"])
    assert len(selected) == len(coredns.STANDIN_HOSTS)  # one pod, so one address, per name
