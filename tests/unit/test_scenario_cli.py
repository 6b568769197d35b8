"""``python -m scenarios``: list, run (exit codes, console output, JSON report), error handling."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from scenarios import __main__ as cli
from scenarios.clusters import BACKENDS
from scenarios.clusters.base import OpResult
from tests.article import DENIED_HEAD as DENIED
from tests.unit.test_scenario_fakes import FakeCluster

CATALOG = [
    "egress-disabled",
    "passthrough-permissive",
    "passthrough-policy",
    "gateway-permissive",
    "gateway-policy",
]
SCENARIO = """\
name: deny-httpstat
title: httpstat.us is denied
steps:
  - narration: Apply a policy.
    apply:
      manifest: |
        kind: Egress
        apiVersion: policy.openservicemesh.io/v1alpha1
        metadata: {name: httpbin-80, namespace: curl}
        spec:
          sources: [{kind: ServiceAccount, name: curl, namespace: curl}]
          ports: [{number: 80, protocol: http}]
  - narration: {en: Send a request., zh: 发送请求。}
    request:
      namespace: curl
      selector: app=curl
      container: curl
      urls: [http://httpstat.us/200]
      timeout: 0.2
      expect:
        - status: 403
          headers: {content-length: "13"}
"""
ALLOWED = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"


def python_m_scenarios(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "scenarios", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_list_shows_the_catalog_in_order():
    out = python_m_scenarios("list")
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names == CATALOG
    assert "\x1b[" not in out.stdout
    assert "passthrough-policy       9 steps  Sidecar passthrough, policy mode" in out.stdout


def test_usage_errors_exit_2_with_a_message():
    out = python_m_scenarios("run", "no-such-scenario")
    assert out.returncode == 2
    assert "error: no scenario named 'no-such-scenario'" in out.stderr and "Traceback" not in out.stderr
    out = python_m_scenarios("run", "--backend", "nomad")
    assert out.returncode == 2 and "invalid choice: 'nomad'" in out.stderr


@pytest.fixture
def fake_backend(monkeypatch):
    """``--backend fake`` answers from a FakeCluster; image builds are skipped."""
    cluster = FakeCluster()
    module = types.ModuleType("fake_backend")
    module.Fake = lambda options: cluster
    monkeypatch.setitem(sys.modules, "fake_backend", module)
    monkeypatch.setitem(BACKENDS, "fake", "fake_backend:Fake")
    images = types.ModuleType("scenarios.images")
    images.build_all = lambda base_image=None, progress=None: {"proxy": "egress-mesh/proxy:test"}
    monkeypatch.setitem(sys.modules, "scenarios.images", images)
    return cluster


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_run_passes_prints_steps_and_writes_the_report(tmp_path, capsys, monkeypatch, fake_backend):
    monkeypatch.setenv("NO_COLOR", "1")
    fake_backend.answers["exec"] = OpResult("docker exec curl curl -sI http://httpstat.us/200", 0, DENIED)
    path = tmp_path / "deny.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    report = tmp_path / "out" / "report.json"
    code, out = run_cli(
        capsys, "run", str(path), "--backend", "fake", "--report", str(report), "--lang", "zh"
    )
    assert code == 0, out
    assert "[2/2] request: 发送请求。" in out
    assert "$ kubectl exec" in out and "-- curl -sI http://httpstat.us/200" in out
    assert "HTTP/1.1 403 Forbidden" in out
    assert "passed on fake" in out
    assert "\x1b[" not in out
    assert [c.op for c in fake_backend.calls][:4] == ["up", "load_images", "install_mesh", "reset"]
    assert fake_backend.calls[-1].op == "down"
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["passed"] is True and data["backend"] == "fake"
    assert data["scenarios"] == [
        {
            "name": "deny-httpstat",
            "title": {"en": "httpstat.us is denied"},
            "file": str(path),
            "status": "passed",
            "passed": True,
            "skipped": None,
            "error": None,
            "duration": data["scenarios"][0]["duration"],
            "steps": 2,
        }
    ]
    request = data["steps"][1]
    assert request["scenario"] == "deny-httpstat" and request["index"] == 2 and request["kind"] == "request"
    assert request["narration"] == {"en": "Send a request.", "zh": "发送请求。"}
    assert request["command"] == "docker exec curl curl -sI http://httpstat.us/200"
    assert request["kubectl"].endswith("-n curl -c curl -- curl -sI http://httpstat.us/200")
    assert request["expected"] == {
        "exit_code": 0,
        "responses": [{"status": 403, "headers": {"content-length": "13"}}],
    }
    assert request["actual"]["exit_code"] == 0
    assert request["actual"]["responses"][0]["status_line"] == "HTTP/1.1 403 Forbidden"
    assert request["pass"] is True and request["skipped"] is None and request["problems"] == []
    assert isinstance(request["duration"], float)


def test_run_of_a_failing_scenario_exits_1_and_says_why(tmp_path, capsys, fake_backend):
    fake_backend.answers["exec"] = OpResult("docker exec ...", 0, ALLOWED)
    path = tmp_path / "deny.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    report = tmp_path / "report.json"
    code, out = run_cli(capsys, "run", str(path), "--backend", "fake", "--keep", "--report", str(report))
    assert code == 1
    assert "FAILED" in out
    assert "response 1 (http://httpstat.us/200): status 200, expected 403" in out
    assert fake_backend.calls[-1].op == "down" and fake_backend.calls[-1].args == (True,)
    step = json.loads(report.read_text(encoding="utf-8"))["steps"][1]
    assert step["pass"] is False and step["status"] == "failed"
    assert step["actual"]["responses"][0]["status"] == 200


def test_broken_backend_setup_exits_3_and_still_cleans_up(tmp_path, capsys, fake_backend):
    fake_backend.answers["install_mesh"] = OpResult("meshctl install", 1, "", "controller crashed")
    code, out = run_cli(capsys, "run", "egress-disabled", "--backend", "fake")
    assert code == 3
    assert "setting up the fake backend failed: installing the mesh failed" in out
    assert "controller crashed" in out and "Traceback" not in out
    assert fake_backend.calls[-1].op == "down"


def test_unavailable_backend_exits_3(capsys, monkeypatch):
    monkeypatch.setitem(BACKENDS, "missing", "scenarios.clusters.no_such_module:Nope")
    code, out = run_cli(capsys, "run", "--backend", "missing")
    assert code == 3
    assert "backend unavailable: backend 'missing' cannot be loaded" in out


def test_demo_is_handed_over_to_scenarios_demo(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr("scenarios.demo.cli.main", lambda argv: seen.append(argv) or 4)
    assert cli.main(["demo", "--auto", "--lang", "zh"]) == 4
    assert seen == [["--auto", "--lang", "zh"]]
