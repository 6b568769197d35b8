"""The images' inputs from an installed egress-mesh (no pyproject.toml): requirements, scripts and a
wheel packed from the installed files, the same facts a checkout gives."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scenarios import images
from scenarios.distribution import mesh_source

ROOT = Path(__file__).resolve().parents[2]
METADATA = """\
Metadata-Version: 2.1
Name: egress-mesh
Version: 0.1.0
Requires-Dist: aiohttp>=3.9
Requires-Dist: uvloop>=0.19; sys_platform != "win32"
Provides-Extra: harness
Requires-Dist: requests>=2.31; extra == "harness"
"""
ENTRY_POINTS = """\
[console_scripts]
meshctl = mesh.cli:main
mesh-proxy = mesh.proxy.__main__:main

[pytest11]
egress_mesh = scenarios.pytest_plugin
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An installed egress-mesh as pip leaves it: packages, package data, caches and a dist-info."""
    site = tmp_path / "site-packages"
    for name, text in {
        "mesh/__init__.py": "",
        "mesh/cli.py": "def main():\n    return 0\n",
        "mesh/proxy/__main__.py": "def main():\n    return 0\n",
        "mesh/api/crds/egress.yaml": "kind: CustomResourceDefinition\n",
        "mesh/images/Dockerfile": "FROM scratch AS os\n",
        "mesh/images/standin/standin.py": "print('standin')\n",
        "scenarios/__init__.py": "",
        "egress_mesh-0.1.0.dist-info/METADATA": METADATA,
        "egress_mesh-0.1.0.dist-info/entry_points.txt": ENTRY_POINTS,
        "egress_mesh-0.1.0.dist-info/RECORD": "",
    }.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    (site / "mesh/__pycache__").mkdir()
    (site / "mesh/__pycache__/cli.cpython-311.pyc").write_bytes(b"\0junk")
    return site


def installed(site: Path):
    return mesh_source(site, importlib.metadata.PathDistribution(site / "egress_mesh-0.1.0.dist-info"))


def test_an_installed_package_gives_its_runtime_requirements_without_extras(site):
    source = installed(site)
    assert source.requirements == ("aiohttp>=3.9", 'uvloop>=0.19; sys_platform != "win32"')
    assert source.scripts == ("mesh-proxy = mesh.proxy.__main__:main", "meshctl = mesh.cli:main")
    assert source.version == "0.1.0"


def test_the_wheel_is_packed_from_the_installed_files_and_installs(site, tmp_path):
    wheel = installed(site).build_wheel(tmp_path / "dist")
    assert wheel.name == "egress_mesh-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "mesh/api/crds/egress.yaml" in names and "mesh/images/standin/standin.py" in names
        assert not any("__pycache__" in n for n in names)
        record = archive.read("egress_mesh-0.1.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.split(",")
            if digest:  # every file's hash is right (RECORD itself has none)
                data = archive.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}" and int(size) == len(data), name
        assert {line.split(",")[0] for line in record} == names
    target = tmp_path / "target"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (target / "mesh/api/crds/egress.yaml").is_file()
    assert (target / "bin/meshctl").is_file() and (target / "bin/mesh-proxy").is_file()


def test_tags_do_not_depend_on_how_egress_mesh_was_obtained(site, tmp_path, monkeypatch):
    """A checkout with the same code, dependencies and scripts gets the same image tags."""
    checkout = tmp_path / "checkout"
    for path in site.rglob("*"):
        if path.is_file() and "dist-info" not in str(path):
            (checkout / path.relative_to(site)).parent.mkdir(parents=True, exist_ok=True)
            (checkout / path.relative_to(site)).write_bytes(path.read_bytes())
    (checkout / "pyproject.toml").write_text(
        '[project]\nname = "egress-mesh"\nversion = "0.1.0"\n'
        'dependencies = ["aiohttp>=3.9", "uvloop>=0.19; sys_platform != \'win32\'"]\n'
        '[project.scripts]\nmeshctl = "mesh.cli:main"\nmesh-proxy = "mesh.proxy.__main__:main"\n'
        '[project.optional-dependencies]\nharness = ["requests>=2.31"]\n'
    )
    monkeypatch.setattr(
        "scenarios.images.mesh_source", lambda root: installed(site) if root == site else mesh_source(root)
    )
    assert installed(site).requirements == mesh_source(checkout).requirements
    assert images.compute_tags("sha256:base", site) == images.compute_tags("sha256:base", checkout)


def test_this_checkout_and_its_installed_metadata_agree(tmp_path):
    """The editable install's metadata says what pyproject.toml says (reinstall when this fails)."""
    checkout = mesh_source(ROOT)
    installed_meta = mesh_source(tmp_path, importlib.metadata.distribution("egress-mesh"))
    assert installed_meta.requirements == checkout.requirements
    assert installed_meta.scripts == checkout.scripts
    assert installed_meta.version == checkout.version
