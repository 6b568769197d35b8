"""The pytest plugin as a user meets it: ``pytest my-checks/`` in a directory of their own.

Each test writes a user's checks (scenario files, a hand-written test) into a scratch directory
and runs pytest there in a subprocess. The scratch ``conftest.py`` swaps the session's
``mesh_cluster`` for an in-memory cluster that answers like the article's mesh (a user can
override any fixture the same way); everything else is the installed plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = """\
import pytest

from tests.article_cluster import ArticleCluster


@pytest.fixture(scope="session")
def mesh_cluster():
    return ArticleCluster()
"""
SETUP_STEPS = """\
  - narration: Deny by default.
    patch: {kind: meshconfig, name: osm-mesh-config, namespace: osm-system,
            patch: {"spec": {"traffic": {"enableEgress": false}}}}
  - narration: Allow httpbin.org.
    apply:
      manifest: |
        kind: Egress
        apiVersion: policy.openservicemesh.io/v1alpha1
        metadata: {name: httpbin-80, namespace: curl}
        spec:
          sources: [{kind: ServiceAccount, name: curl, namespace: curl}]
          hosts: [httpbin.org]
          ports: [{number: 80, protocol: http}]
"""
PASSING = f"""\
name: httpbin-only
title: Only httpbin.org leaves
steps:
{SETUP_STEPS}  - narration: httpstat.us is refused.
    request:
      namespace: curl
      selector: app=curl
      container: curl
      urls: [http://httpbin.org:80/get, http://httpstat.us/200]
      timeout: 0.2
      expect: [{{status: 200}}, {{status: 403, headers: {{content-length: "13"}}}}]
"""
FAILING = f"""\
name: httpstat-allowed
title: A wrong expectation
steps:
{SETUP_STEPS}  - narration: Expect httpstat.us to answer (it is refused).
    request:
      namespace: curl
      selector: app=curl
      container: curl
      urls: [http://httpstat.us/200]
      timeout: 0.2
      expect: [{{status: 200}}]
"""
HAND_WRITTEN = """\
def test_only_httpbin_leaves(mesh):
    mesh.patch("meshconfig", "osm-mesh-config", "osm-system", {"spec": {"traffic": {"enableEgress": False}}})
    mesh.apply('''
kind: Egress
apiVersion: policy.openservicemesh.io/v1alpha1
metadata: {name: httpbin-80, namespace: curl}
spec:
  sources: [{kind: ServiceAccount, name: curl, namespace: curl}]
  hosts: [httpbin.org]
  ports: [{number: 80, protocol: http}]
''')
    reply = mesh.request("curl", "app=curl", "curl", ["http://httpbin.org/get", "http://httpstat.us/200"])
    assert reply.exit_code == 0
    assert reply.statuses == [200, 403]
    assert reply.responses[1].header("content-length") == "13"


def test_the_gateway_logs_what_leaves(mesh):
    mesh.patch("meshconfig", "osm-mesh-config", "osm-system", {"spec": {"traffic": {"enableEgress": True}}})
    mesh.apply('''
kind: EgressGateway
apiVersion: policy.openservicemesh.io/v1alpha1
metadata: {name: global-egress-gateway, namespace: egress-gateway}
spec:
  global: [{service: global-egress-gateway, namespace: egress-gateway}]
''')
    assert mesh.request("curl", "app=curl", "curl", ["http://httpbin.org/get"]).statuses == [200]
    records = mesh.gateway_records()
    assert records.hosts() == ["httpbin.org"]
    assert records.requests[0]["source_address"] == mesh.pod_ip("curl", "app=curl")
    assert mesh.pod_log("curl", "app=curl", "sidecar").records == [{"msg": "allowed by policy"}]
"""


def checks(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    folder = tmp_path / "my-checks"
    folder.mkdir()
    for name, text in files.items():
        (folder / name.replace("_scenario", ".scenario").replace("_yaml", ".yaml")).write_text(text)
    return folder


def pytest_in(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    env.pop("EGRESS_MESH_REQUIRE_ALL", None)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        *args,
    ]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_scenario_files_are_tests_one_item_per_scenario(tmp_path):
    checks(
        tmp_path,
        httpbin_scenario_yaml=PASSING,
        two_scenario_yaml=PASSING.replace("httpbin-only", "a")
        + "---\n"
        + PASSING.replace("httpbin-only", "b"),
        notes_yaml="not: collected\n",
    )
    proc = pytest_in(tmp_path, "my-checks", "-v")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "my-checks/httpbin.scenario.yaml::httpbin-only PASSED" in out
    assert "my-checks/two.scenario.yaml::a PASSED" in out and "my-checks/two.scenario.yaml::b PASSED" in out
    assert "3 passed" in out


def test_a_failing_expectation_shows_the_command_expected_and_actual(tmp_path):
    checks(tmp_path, wrong_scenario_yaml=FAILING)
    proc = pytest_in(tmp_path, "my-checks")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "scenario httpstat-allowed (wrong.scenario.yaml) failed" in out
    assert "httpstat-allowed step 3 (request) failed: Expect httpstat.us to answer (it is refused)." in out
    lookup = "$(kubectl get pod -n curl -l app=curl -o jsonpath='{.items..metadata.name}')"
    assert f'  command:  kubectl exec "{lookup}" -n curl -c curl -- curl -sI http://httpstat.us/200' in out
    assert '  expected: {"exit_code": 0, "responses": [{"status": 200}]}' in out
    assert '  actual:   {"exit_code": 0, "responses": [{"status_line": "HTTP/1.1 403 Forbidden"' in out
    assert "  - response 1 (http://httpstat.us/200): status 403, expected 200" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert "FAILED my-checks/wrong.scenario.yaml::httpstat-allowed" in out


def test_hand_written_tests_use_the_step_helpers(tmp_path):
    checks(tmp_path, test_mine_py=HAND_WRITTEN.replace("_py", ".py"))
    (tmp_path / "my-checks" / "test_mine_py").rename(tmp_path / "my-checks" / "test_mine.py")
    proc = pytest_in(tmp_path, "my-checks", "-v")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "test_only_httpbin_leaves PASSED" in out and "test_the_gateway_logs_what_leaves PASSED" in out


def test_a_scenario_file_that_does_not_load_is_a_collection_error_naming_file_and_step(tmp_path):
    broken = PASSING.replace("status: 403", "status: 99")
    checks(tmp_path, broken_scenario_yaml=broken)
    proc = pytest_in(tmp_path, "my-checks")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "ERROR collecting my-checks/broken.scenario.yaml" in out
    assert (
        "broken.scenario.yaml: step 3 (request): request/expect/1/status: 99 is less than the minimum of 100"
        in out
    )
    assert "Traceback" not in out


def test_report_option_writes_the_json_report_of_the_session(tmp_path):
    checks(tmp_path, ok_scenario_yaml=PASSING, wrong_scenario_yaml=FAILING)
    proc = pytest_in(tmp_path, "my-checks", "--report", "out/report.json")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert proc.returncode == 1
    assert data["passed"] is False
    assert [(s["name"], s["status"]) for s in data["scenarios"]] == [
        ("httpbin-only", "passed"),
        ("httpstat-allowed", "failed"),
    ]
    assert data["steps"][-1]["problems"] == ["response 1 (http://httpstat.us/200): status 403, expected 200"]


def test_the_options_are_the_harness_options(tmp_path):
    proc = pytest_in(tmp_path, "--help")
    for flag in (
        "--backend=",
        "--k8s-version=",
        "--keep",
        "--report=FILE.json",
        "--external=",
        "--require-all",
    ):
        assert flag in proc.stdout, flag
    assert "scenario_files" in proc.stdout
