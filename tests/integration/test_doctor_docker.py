"""``python -m scenarios doctor`` with the real Docker engine and stand-in kind/kubectl on PATH."""

from __future__ import annotations

import json

import pytest

from scenarios.__main__ import main
from tests import fake_tools

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def engine():
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except Exception as error:
        pytest.skip(f"no Docker engine answers: {error}")


def test_kind_is_ready_and_a_foreign_cluster_name_is_reported_before_anything_runs(
    tmp_path, monkeypatch, capsys
):
    state = fake_tools.use(tmp_path, monkeypatch, ("kind", "kubectl"))
    monkeypatch.setenv("NO_COLOR", "1")
    args = ["doctor", "--backend", "kind", "--base-image", "debian:bookworm-slim"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ok       Docker engine" in out and "Docker 2" in out
    assert "kind v0.33.0" not in out and "v0.33.0 (" in out  # version, then where the program is
    assert "egress-mesh: will be created" in out and out.rstrip().endswith("backend kind: ready")
    (state / "state.json").write_text(
        json.dumps({"kind": {"egress-mesh": {"images": []}}, "k3d": {}, "k3s": {}})
    )
    assert main(args) == 3
    out = capsys.readouterr().out
    assert "egress-mesh: exists and was not created by egress-mesh" in out
    assert "fix: pass --reuse to run in it, or --cluster-name OTHER" in out
    assert main([*args, "--reuse"]) == 0
    assert "used because of --reuse" in capsys.readouterr().out
    assert not [c for c in fake_tools.calls(state, "kind") if c["args"][:1] in (["create"], ["delete"])]
