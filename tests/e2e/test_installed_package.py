"""Issue 12's done-when, for real: the egress-mesh wheel in a fresh venv outside the repository,
and a user's ``pytest my-checks/`` there running their scenario files and a hand-written test on
Docker. The installed package builds (or finds, by content tag) its own images; a failing
expectation shows the command, expected and actual.

Slow (a venv from the wheel, a second Docker "cluster"); the images are the ones the checkout's
e2e tests use when the code is the same, since their tags follow the content only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.distribution import mesh_source

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.backends("docker")]
ROOT = Path(__file__).resolve().parents[2]
ALLOW_HTTPBIN = """\
  - narration: Deny by default.
    patch: {kind: meshconfig, name: osm-mesh-config, namespace: osm-system,
            patch: {"spec": {"traffic": {"enableEgress": false}}}}
  - narration: Allow httpbin.org for the service account curl.
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
CLIENT = """\
  - narration: The client namespace, in the mesh.
    run: [kubectl, create, namespace, curl]
  - narration: Add it to the mesh.
    run: [osm, namespace, add, curl]
  - narration: My client (its manifest next to this file).
    apply: {file: client.yaml, namespace: curl}
  - narration: Wait for it.
    wait: {namespace: curl, selector: app=curl}
"""
SCENARIOS = f"""\
name: only-httpbin
title: Only httpbin.org leaves
steps:
{CLIENT}{ALLOW_HTTPBIN}  - narration: httpbin.org answers, httpstat.us is refused by the sidecar.
    request:
      namespace: curl
      selector: app=curl
      container: curl
      urls: [http://httpbin.org/get, http://httpstat.us/200]
      expect: [{{status: 200}}, {{status: 403, headers: {{content-length: "13"}}}}]
---
name: httpstat-expected-wrongly
title: A wrong expectation (httpstat.us is refused)
steps:
{CLIENT}{ALLOW_HTTPBIN}  - narration: Expect httpstat.us to answer.
    request:
      namespace: curl
      selector: app=curl
      container: curl
      urls: [http://httpstat.us/200]
      timeout: 3
      expect: [{{status: 200}}]
"""
HAND_WRITTEN = '''\
EGRESS = """
kind: Egress
apiVersion: policy.openservicemesh.io/v1alpha1
metadata: {name: httpbin-80, namespace: curl}
spec:
  sources: [{kind: ServiceAccount, name: curl, namespace: curl}]
  hosts: [httpbin.org]
  ports: [{number: 80, protocol: http}]
"""


def test_policy_mode_refuses_httpstat(mesh):
    mesh.deploy_sample_client()
    mesh.patch("meshconfig", "osm-mesh-config", "osm-system", {"spec": {"traffic": {"enableEgress": False}}})
    mesh.apply(EGRESS)
    urls = ["http://httpbin.org/get", "http://httpstat.us/200"]
    reply = mesh.request(
        "curl", "app=curl", "curl", urls, curl_args=["-si"], until=lambda r: r.statuses == [200, 403]
    )
    assert reply.exit_code == 0 and reply.statuses == [200, 403]
    assert reply.responses[1].body == "Access denied"
    records = mesh.pod_log("curl", "app=curl", "sidecar", until=lambda log: "deny" in log.text).records
    denied = [r for r in records if r.get("event") == "decision" and r.get("decision") == "deny"]
    assert [r["host"] for r in denied] == ["httpstat.us"]
'''


def docker_unavailable() -> str | None:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


def run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EGRESS_MESH_REQUIRE_ALL")}
    env |= {"NO_COLOR": "1", "COLUMNS": "200", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def user_run(tmp_path_factory) -> subprocess.CompletedProcess[str]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    scratch = tmp_path_factory.mktemp("outside-the-repo")
    assert not scratch.is_relative_to(ROOT)
    wheel = mesh_source(ROOT).build_wheel(scratch / "dist")
    venv = scratch / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], scratch)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    installed = run([python, "-m", "pip", "install", "-q", f"{wheel}[harness]", "pytest"], scratch)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    checks = scratch / "my-checks"
    checks.mkdir()
    (checks / "client.yaml").write_text((ROOT / "scenarios/manifests/curl.yaml").read_text())
    (checks / "policies.scenario.yaml").write_text(SCENARIOS)
    (checks / "test_mine.py").write_text(HAND_WRITTEN)
    return run(
        [python, "-m", "pytest", "my-checks", "--backend", "docker", "-v", "-p", "no:cacheprovider"], scratch
    )


def test_the_installed_plugin_runs_the_users_checks_on_docker(user_run):
    out = user_run.stdout + user_run.stderr
    assert "plugins:" in out and "egress-mesh-0.1.0" in out
    assert "my-checks/policies.scenario.yaml::only-httpbin PASSED" in out, out[-8000:]
    assert "my-checks/test_mine.py::test_policy_mode_refuses_httpstat PASSED" in out, out[-8000:]
    assert "my-checks/policies.scenario.yaml::httpstat-expected-wrongly FAILED" in out, out[-8000:]
    assert user_run.returncode == 1 and "1 failed, 2 passed" in out, out[-8000:]
    assert "pyproject.toml" not in out and "No such file or directory" not in out


def test_a_failing_expectation_shows_command_expected_and_actual(user_run):
    out = user_run.stdout
    failure = out[out.index("scenario httpstat-expected-wrongly (policies.scenario.yaml) failed") :]
    assert "step 7 (request) failed: Expect httpstat.us to answer." in failure
    assert re.search(
        r"  command:  kubectl exec \"\$\(kubectl get pod -n curl -l app=curl .*\" -n curl -c curl -- "
        r"curl -sI http://httpstat.us/200\n",
        failure,
    )
    assert re.search(r"  ran:      docker exec \S+ curl -sI http://httpstat.us/200\n", failure)
    assert '  expected: {"exit_code": 0, "responses": [{"status": 200}]}' in failure
    assert '  actual:   {"exit_code": 0, "responses": [{"status_line": "HTTP/1.1 403 Forbidden"' in failure
    assert "  - response 1 (http://httpstat.us/200): status 403, expected 200" in failure
