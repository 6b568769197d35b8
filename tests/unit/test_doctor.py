"""``python -m scenarios doctor``: what each backend needs, what is missing, the command that fixes it.

Stand-in programs (tests/fake_tools.py) alone on PATH, and a Docker host that does not answer;
tests/integration/test_doctor_docker.py covers the real engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scenarios.__main__ import main
from tests import fake_tools


@pytest.fixture
def no_docker(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("NO_COLOR", "1")


def doctor(capsys, *args: str) -> tuple[int, str]:
    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def row(out: str, status: str, what: str) -> str:
    match = re.search(rf"^{status}\s+{re.escape(what)}\s+(.*)$", out, re.MULTILINE)
    assert match, f"no {status} row for {what} in:\n{out}"
    return match.group(1)


def test_kind_without_docker_and_kind_says_what_is_missing_and_how_to_fix_it(
    tmp_path, monkeypatch, capsys, no_docker
):
    fake_tools.use(tmp_path, monkeypatch, ("kubectl",), only=True)
    code, out = doctor(capsys, "--backend", "kind")
    assert code == 3
    assert row(out, "MISSING", "Docker engine").startswith("no answer")
    assert "fix: sudo .ci/setup" in out
    assert row(out, "MISSING", "kind") == "not on PATH"
    assert (
        "releases/download/v0.33.0/kind-linux-" in out
        and "sudo install -m 0755 kind /usr/local/bin/kind" in out
    )
    assert row(out, "ok", "kubectl").startswith("v1.36.4 (")
    assert out.rstrip().endswith("backend kind: missing Docker engine, kind")


def test_another_kind_release_or_a_far_kubectl_is_a_warning_only(tmp_path, monkeypatch, capsys):
    fake_tools.use(tmp_path, monkeypatch, ("kind", "kubectl"))
    monkeypatch.setenv("FAKE_KIND_VERSION", "v0.30.0")
    monkeypatch.setenv("FAKE_KUBECTL_VERSION", "v1.31.2")
    from scenarios.clusters import doctor as module

    found = module.program("kind") + module.kubectl_skew("1.37")
    assert [(c.what, c.ok, c.required) for c in found] == [
        ("kind", True, True), ("kind version", False, False), ("kubectl version skew", False, False),
    ]  # fmt: skip
    assert "v0.30.0; tested with v0.33.0" in found[1].found and module.ready(found)


def test_k3s_with_a_reachable_kubeconfig_is_ready(tmp_path, monkeypatch, capsys, no_docker):
    state = fake_tools.use(tmp_path, monkeypatch, ("k3s", "kubectl", "kind"), only=True)
    (state / "state.json").write_text('{"kind": {"x": {"images": []}}, "k3d": {}, "k3s": {"images": []}}')
    config = tmp_path / "k3s.yaml"
    config.write_text(fake_tools.kubeconfig("kind", "x"))
    code, out = doctor(capsys, "--backend", "k3s", "--kubeconfig", str(config))
    assert code == 0, out
    assert row(out, "ok", "k3s").startswith("v1.36.4+k3s1")
    assert row(out, "ok", "cluster reachable") == f"{config}: API server ready"
    assert "Docker engine" not in out  # k3s imports with its own ctr
    (state / "state.json").write_text('{"kind": {}, "k3d": {}, "k3s": {"images": []}}')
    code, out = doctor(capsys, "--backend", "k3s", "--kubeconfig", str(config))
    assert code == 3 and "The connection to the server was refused" in row(
        out, "MISSING", "cluster reachable"
    )


def test_external_needs_a_registry_and_a_kubeconfig(tmp_path, monkeypatch, capsys, no_docker):
    if Path("/etc/rancher/k3s/k3s.yaml").exists():
        pytest.skip("this machine has a k3s kubeconfig, which counts as found")
    fake_tools.use(tmp_path, monkeypatch, ("kubectl",), only=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code, out = doctor(capsys, "--backend", "external")
    assert code == 3
    assert "fix: pass --registry HOST[:PORT]/PATH" in out and "fix: pass --kubeconfig FILE" in out
