"""Image tags, build-context layout and the host apt-source parsing, without Docker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scenarios import base_image, images

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    def pyproject(aiohttp: str) -> str:
        return f'[project]\nname = "egress-mesh"\ndependencies = ["aiohttp>={aiohttp}"]\n'

    """A minimal copy of the inputs that tags depend on."""
    (tmp_path / "mesh/images/standin").mkdir(parents=True)
    shutil.copy2(ROOT / "mesh/images/Dockerfile", tmp_path / "mesh/images/Dockerfile")
    (tmp_path / "mesh/images/standin/standin.py").write_text("print('standin')\n")
    (tmp_path / "mesh/__init__.py").write_text("")
    (tmp_path / "mesh/proxy.py").write_text("X = 1\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "egress-mesh"\ndependencies = ["aiohttp>=3.9"]\n'
    )
    return tmp_path


def test_tags_name_every_image_and_are_stable(tree: Path):
    first = images.compute_tags("sha256:base", tree)
    assert set(first) == {"proxy", "gateway", "controller", "curl", "standin"}
    assert all(ref.startswith(f"egress-mesh/{name}:") for name, ref in first.items())
    assert len({ref.split(":")[1] for ref in first.values()}) == 5
    assert images.compute_tags("sha256:base", tree) == first


def test_mesh_source_change_retags_only_mesh_images(tree: Path):
    before = images.compute_tags("sha256:base", tree)
    (tree / "mesh/proxy.py").write_text("X = 2\n")
    after = images.compute_tags("sha256:base", tree)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"proxy", "gateway", "controller"}


def test_caches_do_not_change_tags(tree: Path):
    before = images.compute_tags("sha256:base", tree)
    (tree / "mesh/__pycache__").mkdir()
    (tree / "mesh/__pycache__/proxy.cpython-311.pyc").write_bytes(b"\0junk")
    assert images.compute_tags("sha256:base", tree) == before


def test_standin_change_retags_only_standin(tree: Path):
    before = images.compute_tags("sha256:base", tree)
    (tree / "mesh/images/standin/standin.py").write_text("print('changed')\n")
    after = images.compute_tags("sha256:base", tree)
    assert {n for n in before if before[n] != after[n]} == {"standin"}


def test_base_dockerfile_or_dependency_change_retags_everything(tree: Path):
    before = images.compute_tags("sha256:base", tree)
    assert all(before[n] != r for n, r in images.compute_tags("sha256:other", tree).items())
    (tree / "pyproject.toml").write_text(
        '[project]\nname = "egress-mesh"\ndependencies = ["aiohttp>=3.10"]\n'
    )
    after = images.compute_tags("sha256:base", tree)
    assert {n for n in before if before[n] != after[n]} == {"proxy", "gateway", "controller", "standin"}
    (tree / "mesh/images/Dockerfile").write_text((tree / "mesh/images/Dockerfile").read_text() + "\n# x\n")
    final = images.compute_tags("sha256:base", tree)
    assert all(after[n] != final[n] for n in after)


def test_requirements_are_the_package_dependencies():
    reqs = images.requirements(ROOT)
    assert any(r.startswith("aiohttp") for r in reqs)
    assert not any(r.startswith(("pytest", "docker", "rich")) for r in reqs), (
        "harness deps stay out of images"
    )


def test_build_context_layout(tree: Path, tmp_path_factory):
    deps = tmp_path_factory.mktemp("deps")
    (deps / "pip.whl").write_bytes(b"pip")
    (deps / "aiohttp-3.9-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"w")
    (deps / "requirements.txt").write_text("aiohttp>=3.9\n")
    wheel = tmp_path_factory.mktemp("dist") / "egress_mesh-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"mesh")
    context = tmp_path_factory.mktemp("context")
    images.assemble_context(context, deps, wheel, tree)
    files = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert files == [
        "Dockerfile",
        "standin/standin.py",
        "wheels/deps/aiohttp-3.9-cp311-cp311-manylinux_2_17_x86_64.whl",
        "wheels/deps/pip.whl",
        "wheels/deps/requirements.txt",
        "wheels/mesh/egress_mesh-0.1.0-py3-none-any.whl",
        "wheels/mesh/pip.whl",
    ]


def test_dockerfile_has_every_target_and_a_base_argument():
    text = (ROOT / "mesh/images/Dockerfile").read_text()
    assert "ARG BASE_IMAGE=egress-mesh/debian-base:" in text
    for name in ("os", "runtime", "mesh", *images.NAMES):
        assert f" AS {name}\n" in text, name
    assert "--no-index" in text, "installs never reach an index"


ONE_LINE = """
# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main contrib
deb http://mirror.example/debian bookworm-updates main
deb-src http://mirror.example/debian bookworm main
"""

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: trixie
Components: main

Enabled: no
Types: deb
URIs: http://off.example/debian
Suites: sid
Components: main
"""


def test_one_line_sources():
    sources = base_image.parse_one_line(ONE_LINE)
    assert [(s.uri, s.suite) for s in sources] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
    ]
    assert sources[0].keyring == "/usr/share/keyrings/k.gpg"
    assert sources[0].components == ("main", "contrib")


def test_deb822_sources():
    sources = base_image.parse_deb822(DEB822)
    assert [(s.uri, s.suite) for s in sources] == [
        ("http://deb.example/debian", "bookworm"),
        ("http://deb.example/debian", "bookworm-updates"),
        ("http://deb.example/debian-security", "bookworm-security"),
    ]
    chosen = base_image.pick_source(sources)
    assert (chosen.uri, chosen.suite, chosen.keyring) == (
        "http://deb.example/debian",
        "bookworm",
        "/usr/share/keyrings/debian-archive-keyring.gpg",
    )


def test_host_sources_reads_both_formats(tmp_path: Path):
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text("deb http://a.example/ubuntu jammy-updates main\n")
    (tmp_path / "etc/apt/sources.list.d/debian.sources").write_text(DEB822)
    chosen = base_image.pick_source(base_image.host_sources(str(tmp_path)))
    assert (chosen.uri, chosen.suite) == ("http://deb.example/debian", "bookworm")


def test_no_usable_source_says_what_to_do():
    with pytest.raises(base_image.BaseImageError, match="--base-image"):
        base_image.pick_source(
            base_image.parse_one_line("deb http://x.example/debian bookworm-security main\n")
        )


def _fake_debootstrap(tmp_path: Path, monkeypatch, body: str) -> None:
    script = tmp_path / "bin/debootstrap"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")


def test_debootstrap_progress_is_summarised(tmp_path: Path, monkeypatch):
    lines = "\n".join(f"echo 'I: Retrieving pkg{i} 1.0'" for i in range(1, 61))
    _fake_debootstrap(tmp_path, monkeypatch, f"echo 'I: Checking Release signature'\n{lines}\n")
    said: list[str] = []
    base_image._debootstrap(
        "bookworm", "http://mirror.example/debian", str(tmp_path / "root"), None, said.append
    )
    assert said[0].startswith("$ debootstrap --variant=minbase --include=python3,iptables")
    assert said[1:] == [
        "  I: Checking Release signature",
        "  retrieving packages (1): pkg1 1.0",
        "  retrieving packages (25): pkg25 1.0",
        "  retrieving packages (50): pkg50 1.0",
    ]


def test_debootstrap_failure_shows_its_output(tmp_path: Path, monkeypatch):
    _fake_debootstrap(tmp_path, monkeypatch, "echo 'E: Couldn'\"'\"'t download release bookworm'\nexit 1\n")
    with pytest.raises(base_image.BaseImageError, match="download release"):
        base_image._debootstrap("bookworm", "http://mirror.example/debian", str(tmp_path / "r"), None, print)


class _Images:
    def __init__(self, present: set[str]):
        self.present = present

    def get(self, ref: str):
        import docker

        if ref not in self.present:
            raise docker.errors.ImageNotFound(ref)
        return ref


class _Client:
    def __init__(self, present: set[str]):
        self.images = _Images(present)


def test_existing_base_image_is_reused_without_debootstrap(tmp_path: Path, monkeypatch):
    _fake_debootstrap(tmp_path, monkeypatch, "exit 99\n")
    client = _Client({"egress-mesh/debian-base:bookworm"})
    ref = base_image.ensure_base_image(
        "bookworm", "http://mirror.example/debian", progress=print, client=client
    )
    assert ref == "egress-mesh/debian-base:bookworm"
