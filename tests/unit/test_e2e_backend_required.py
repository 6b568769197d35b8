"""A backend asked for with ``--backend`` that does not come up fails the e2e run (issue 9, item 2).

Runs pytest on the article's e2e tests in a subprocess, on a PATH without kind and a Docker host
that does not answer, and looks at the outcome and exit code a CI job would see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_e2e(tmp_path: Path, *args: str, require_all: bool = False) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "NO_COLOR": "1",
    }
    if require_all:
        env["EGRESS_MESH_REQUIRE_ALL"] = "1"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "scenarios/catalog",
        "-q",
        "-p",
        "no:cacheprovider",
        *args,
    ]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(autouse=True)
def no_kind_here():
    for directory in ("/usr/bin", "/bin"):
        if Path(directory, "kind").exists():
            pytest.skip(f"{directory}/kind exists; this test needs a PATH without kind")


def test_a_requested_backend_that_does_not_come_up_is_an_error_not_a_skip(tmp_path):
    proc = run_e2e(tmp_path, "--backend", "kind")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "5 errors" in out and "skipped" not in out, out
    assert "backend kind was asked for (--backend kind) but did not come up" in out
    assert "kind is not installed" in out


def test_the_default_backend_may_skip_on_a_laptop_but_not_under_require_all(tmp_path):
    laptop = run_e2e(tmp_path)
    assert laptop.returncode == 0 and "5 skipped" in laptop.stdout, laptop.stdout + laptop.stderr
    ci = run_e2e(tmp_path, require_all=True)
    assert ci.returncode != 0 and "--require-all is set" in ci.stdout, ci.stdout + ci.stderr
