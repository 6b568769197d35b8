"""What the mesh images are made of, from a checkout or from the installed egress-mesh package.

The images need three things from egress-mesh itself: its runtime dependencies (``pip download``ed
for the image's Python), a wheel of it, and the Dockerfile and stand-in server (``mesh/images/``,
shipped as package data). A checkout has ``pyproject.toml`` next to ``mesh/``: the dependencies are
``[project].dependencies`` and ``pip wheel`` builds the wheel from a scratch copy. An installed
package (a wheel in site-packages) has no ``pyproject.toml``: the dependencies are its
``Requires-Dist`` (extras left out) and the wheel is packed again from its installed files and
metadata (a wheel is a zip plus a ``.dist-info``; no build backend, no network).

Both give the same ``MeshSource`` facts (normalised requirements, console scripts, version), so
the same code gets the same image tags whichever way it was obtained.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

DIST_NAME = "egress-mesh"
#: the directory holding the ``mesh`` and ``scenarios`` packages (a checkout or site-packages)
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mesh", "scenarios")
#: what goes into the egress-mesh wheel from a checkout (copied to a scratch dir first)
CHECKOUT_WHEEL_SOURCES = ("pyproject.toml", "README.md", *PACKAGES)
SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache"})


class SourceError(RuntimeError):
    """egress-mesh's own files cannot be found or packed; the message says which."""


def skipped(path: Path) -> bool:
    """Caches that must neither change an image tag nor go into a wheel."""
    return bool(SKIP_DIRS.intersection(path.parts)) or path.suffix == ".pyc"


def normalise(requirements: list[str]) -> tuple[str, ...]:
    """Requirements in one spelling (``packaging``'s), so a checkout and a wheel agree."""
    return tuple(str(Requirement(r)) for r in requirements)


@dataclass(frozen=True)
class MeshSource:
    root: Path
    version: str
    #: runtime dependencies (what the images install), normalised
    requirements: tuple[str, ...]
    #: console scripts as ``name = module:function``, sorted
    scripts: tuple[str, ...]
    #: the installed distribution (None for a checkout, which pip builds from pyproject.toml)
    dist: importlib.metadata.Distribution | None = field(default=None, compare=False)

    @property
    def images_dir(self) -> Path:
        return self.root / "mesh" / "images"

    def build_wheel(self, dest: Path) -> Path:
        """A pure wheel of egress-mesh in ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        return _pip_wheel(self.root, dest) if self.dist is None else _repack(self.root, self.dist, dest)


def mesh_source(root: Path = ROOT, dist: importlib.metadata.Distribution | None = None) -> MeshSource:
    """The checkout at ``root`` when it has a ``pyproject.toml``, else the installed distribution
    (``dist``, default: the installed egress-mesh)."""
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        with open(pyproject, "rb") as f:
            project = tomllib.load(f).get("project", {})
        return MeshSource(
            root=root,
            version=str(project.get("version", "0")),
            requirements=normalise(list(project.get("dependencies", []))),
            scripts=tuple(sorted(f"{k} = {v}" for k, v in project.get("scripts", {}).items())),
        )
    dist = dist or _distribution()
    runtime = [r for r in dist.requires or [] if not _is_extra(r)]
    scripts = dist.entry_points.select(group="console_scripts")
    return MeshSource(
        root=root,
        version=dist.version,
        requirements=normalise(runtime),
        scripts=tuple(sorted(f"{e.name} = {e.value}" for e in scripts)),
        dist=dist,
    )


def _distribution() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(DIST_NAME)
    except importlib.metadata.PackageNotFoundError:
        raise SourceError(
            f"{DIST_NAME} is neither a checkout here ({ROOT} has no pyproject.toml) nor installed "
            f"(pip install {DIST_NAME}[harness])"
        ) from None


def _is_extra(requirement: str) -> bool:
    marker = Requirement(requirement).marker
    return marker is not None and "extra" in str(marker)


def _pip_wheel(root: Path, dest: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="egress-mesh-src-") as scratch:
        for name in CHECKOUT_WHEEL_SOURCES:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, Path(scratch, name), ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.pyc"))
            elif src.is_file():
                shutil.copy2(src, Path(scratch, name))
        argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--quiet"]
        proc = subprocess.run([*argv, "--wheel-dir", str(dest), scratch], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SourceError(
                f"building the egress-mesh wheel failed:\n{(proc.stdout + proc.stderr)[-3000:]}"
            )
    wheels = sorted(dest.glob("egress_mesh-*.whl"))
    if not wheels:
        raise SourceError("pip wheel produced no egress_mesh wheel")
    return wheels[-1]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _repack(root: Path, dist: importlib.metadata.Distribution, dest: Path) -> Path:
    """The installed package's files and metadata as a wheel again (what pip installed from)."""
    stem = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}"
    info = f"{stem}.dist-info"
    wheel = dest / f"{stem}-py3-none-any.whl"
    files: dict[str, bytes] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and not skipped(path.relative_to(root)):
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    for name in ("METADATA", "entry_points.txt", "top_level.txt"):
        text = dist.read_text(name)
        if text is not None:
            files[f"{info}/{name}"] = text.encode()
    if f"{info}/METADATA" not in files:
        raise SourceError(f"the installed {DIST_NAME} has no METADATA; reinstall it")
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: egress-mesh\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel
