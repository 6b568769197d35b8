"""The quick start's two commands (``.ci/demo``, ``.ci/run``) and ``.ci/setup`` as a user without
root meets them: through sudo when there is one, a clear message when there is none (a fresh
Debian root shell has no sudo; as root they just run). Run as the user ``nobody``, so this needs
root; sudo is a stand-in that records how it was called."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["demo", "run", "setup"]
#: what the scripts run before they know whether they are root
TOOLS = ["bash", "id", "readlink", "dirname", "basename", "cat"]


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A scratch directory nobody can reach (pytest's own lives under a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="egress-mesh-ci-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the scripts as another user (nobody)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))
    return tools


def as_nobody(argv: list[str], path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(path), "HOME": str(tmp_path), "NO_COLOR": "1"}
    setpriv = [shutil.which("setpriv") or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    return subprocess.run(
        [*setpriv, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_without_root_the_script_runs_again_through_sudo(script, bin_dir, tmp_path):
    calls = tmp_path / "sudo-calls"
    sudo = bin_dir / "sudo"
    sudo.write_text(f'#!/bin/sh\necho "$@" > {calls}\n')
    sudo.chmod(0o755)
    calls.touch()
    calls.chmod(0o666)
    proc = as_nobody([str(ROOT / ".ci" / script), "--auto", "x y"], bin_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    args = calls.read_text().split()
    assert args[0].startswith("--preserve-env=") and "EGRESS_MESH_REQUIRE_ALL" in args[0]
    assert args[1:] == [str(ROOT / ".ci" / script), "--auto", "x", "y"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_without_root_and_without_sudo_it_says_how(script, bin_dir, tmp_path):
    proc = as_nobody([str(ROOT / ".ci" / script)], bin_dir, tmp_path)
    assert proc.returncode == 1
    assert (
        f"{script}: needs root and there is no sudo here; as root run: {ROOT / '.ci' / script}" in proc.stderr
    )


def test_the_readme_quick_start_is_these_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.split("#")[0].strip()]
    assert commands == [".ci/demo", ".ci/run"]
    run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup" in run and ".venv/bin/python -m pytest" in run
    demo = (ROOT / ".ci" / "demo").read_text()
    assert "bash .ci/setup" in demo and ".venv/bin/python -m scenarios demo" in demo
