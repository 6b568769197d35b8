"""The CI workflow: jobs, the Kubernetes matrix, pinned tools and images, artifacts."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
import yaml

from scenarios.clusters import BACKENDS, k3d, kind, kubernetes

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "e2e.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_three_jobs_run_on_pushes_and_pull_requests(workflow):
    triggers = workflow.get("on", workflow.get(True))  # PyYAML reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    assert {"unit", "docker", "kubernetes"} <= set(workflow["jobs"])
    assert "nox -s lint tests" in _runs(workflow["jobs"]["unit"])
    docker = _runs(workflow["jobs"]["docker"])
    assert re.search(r"sudo (env \S+ )?\.ci/setup", docker) and "nox -s \"e2e(backend='docker')\"" in docker


def test_kubernetes_matrix_covers_kind_and_k3d_on_three_versions_without_fail_fast(workflow):
    strategy = workflow["jobs"]["kubernetes"]["strategy"]
    assert strategy["fail-fast"] is False
    matrix = strategy["matrix"]
    assert set(matrix["cluster"]) == {"kind", "k3d"}
    assert len(matrix["k8s"]) >= 3
    run = _runs(workflow["jobs"]["kubernetes"])
    assert "nox -s \"e2e(backend='${{ matrix.cluster }}')\"" in run
    assert "--k8s-version ${{ matrix.k8s }}" in run


def test_matrix_versions_are_the_validated_versions():
    from mesh.manifests import K8S_VERSIONS

    strategy = yaml.safe_load(WORKFLOW.read_text())["jobs"]["kubernetes"]["strategy"]
    assert sorted(strategy["matrix"]["k8s"]) == sorted(".".join(v.split(".")[:2]) for v in K8S_VERSIONS)


def test_pinned_node_images_match_the_backends(workflow):
    include = workflow["jobs"]["kubernetes"]["strategy"]["matrix"]["include"]
    matrix = workflow["jobs"]["kubernetes"]["strategy"]["matrix"]
    cells = {(c, v) for c in matrix["cluster"] for v in matrix["k8s"]}
    pinned = {(entry["cluster"], entry["k8s"]): entry["node-image"] for entry in include}
    assert set(pinned) == cells, "every cell pins its node image"
    for (cluster, version), image in pinned.items():
        expected = kind.node_image(version) if cluster == "kind" else k3d.k3s_image(version)
        assert image == expected, f"{cluster} {version}: workflow {image} != backend {expected}"
        if cluster == "kind":
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), "kind node images are pinned by digest"


def test_tools_are_pinned_to_the_versions_the_backends_expect(workflow):
    env = workflow["env"]
    for name in ("KUBECTL_VERSION", "KIND_VERSION", "K3D_VERSION"):
        assert re.fullmatch(r"v\d+\.\d+\.\d+", env[name]), name
    assert env["KIND_VERSION"] == kind.KIND_VERSION
    assert env["K3D_VERSION"] == k3d.K3D_VERSION
    assert env["KUBECTL_VERSION"] == kubernetes.KUBECTL_VERSION


#: the current major of each action (checked on 2026-12-01 against the actions' own repositories)
CURRENT_MAJORS = {"actions/checkout": "v7", "actions/setup-python": "v7", "actions/upload-artifact": "v7"}


def test_actions_are_pinned_to_their_current_major(workflow):
    used = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert used
    for uses in used:
        action, _, version = uses.partition("@")
        assert action in CURRENT_MAJORS, f"{action}: add its current major to CURRENT_MAJORS"
        assert version == CURRENT_MAJORS[action], f"{uses}: current major is {CURRENT_MAJORS[action]}"


def test_no_job_can_pass_having_run_nothing(workflow):
    """Every job runs with EGRESS_MESH_REQUIRE_ALL=1: root/Docker/e2e skips fail, and a backend
    asked for with --backend that does not come up is an error (tests/e2e/conftest.py)."""
    assert workflow["env"]["EGRESS_MESH_REQUIRE_ALL"] == "1"
    for name, job in workflow["jobs"].items():
        assert job.get("env", {}).get("EGRESS_MESH_REQUIRE_ALL", "1") == "1", name
        for step in job["steps"]:
            assert "EGRESS_MESH_REQUIRE_ALL=0" not in step.get("run", ""), (name, step)
    for name in ("docker", "kubernetes"):
        assert re.search(r"nox -s \"e2e\(backend='[^']+'\)\" --", _runs(workflow["jobs"][name])), name


def test_unit_job_runs_the_unit_tests_and_the_integration_tests_run_as_root(workflow):
    assert "nox -s lint tests -- tests/unit" in _runs(workflow["jobs"]["unit"])
    docker = _runs(workflow["jobs"]["docker"])
    assert re.search(
        r"sudo env \S+ EGRESS_MESH_REQUIRE_ALL=1\s+\.venv/bin/python -m pytest tests/integration", docker
    )


@pytest.mark.parametrize("job", ["docker", "kubernetes"])
def test_e2e_jobs_write_a_json_report_and_upload_it_with_the_logs_always(workflow, job):
    steps = workflow["jobs"][job]["steps"]
    assert "--report reports/" in _runs(workflow["jobs"][job])
    assert workflow["jobs"][job]["env"]["EGRESS_MESH_ARTIFACTS"].endswith("/artifacts")
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads, f"{job} uploads nothing"
    for step in uploads:
        assert step["if"] == "always()"
        assert "reports/" in step["with"]["path"] and "artifacts/" in step["with"]["path"]


def test_unit_job_uploads_its_report_always(workflow):
    [upload] = [s for s in workflow["jobs"]["unit"]["steps"] if "upload-artifact" in s.get("uses", "")]
    assert upload["if"] == "always()"


def test_nox_e2e_accepts_every_backend_the_workflow_uses(workflow):
    backends = runpy.run_path(str(ROOT / "noxfile.py"))["BACKENDS"]
    assert backends == list(BACKENDS)
    for cluster in ["docker", *workflow["jobs"]["kubernetes"]["strategy"]["matrix"]["cluster"]]:
        assert cluster in backends
