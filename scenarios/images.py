"""Build and tag every egress-mesh image from ``mesh/images/Dockerfile`` without a registry.

Tags follow the content (base image id, Dockerfile, dependency list, sources), so an unchanged
image is not rebuilt. Python dependencies are wheels downloaded on the host for the image's
Python (cached under ``~/.cache/egress-mesh/wheels``), and egress-mesh itself is a wheel built
from this checkout or packed from the installed package (``scenarios.distribution``), so no
build step needs the network.

    python -m scenarios.images [--base-image debian:bookworm-slim] [--save DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from scenarios.base_image import BaseImageError, Progress, docker_client, ensure_base_image, image_exists
from scenarios.distribution import ROOT, SourceError, mesh_source, skipped

NAMES = ("proxy", "gateway", "controller", "curl", "standin")
MESH_NAMES = ("proxy", "gateway", "controller")
REPOSITORY_PREFIX = "egress-mesh/"
LABEL = "egress-mesh.io/image"
IMAGES_DIR = Path("mesh", "images")


class ImageBuildError(RuntimeError):
    """An image cannot be built; the message says which and why."""


def repository(name: str) -> str:
    return REPOSITORY_PREFIX + name


def requirements(root: Path = ROOT) -> list[str]:
    """The runtime dependencies of the egress-mesh package (what the images install)."""
    return list(mesh_source(root).requirements)


def tree_digest(paths: Iterable[Path], exclude: Iterable[Path] = ()) -> str:
    """Hash of every file under ``paths`` (names and bytes), ignoring caches and ``exclude``."""
    digest = hashlib.sha256()
    excluded = tuple(exclude)
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if skipped(path):
                continue
            if any(path.is_relative_to(e) for e in excluded):
                continue
            digest.update(str(path.relative_to(top.parent)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _short(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def compute_tags(base_id: str, root: Path = ROOT) -> dict[str, str]:
    """``{short name: "egress-mesh/NAME:TAG"}`` for every image, from content only."""
    source = mesh_source(root)
    dockerfile = (root / IMAGES_DIR / "Dockerfile").read_text()
    os_part = _short(base_id, dockerfile)
    runtime_part = _short(os_part, *source.requirements)
    standin_part = tree_digest([root / IMAGES_DIR / "standin"])
    code = tree_digest([root / "mesh"], exclude=[root / IMAGES_DIR])
    mesh_part = _short(code, source.version, *source.scripts)
    tags = {
        "curl": _short(os_part, "curl"),
        "standin": _short(runtime_part, standin_part, "standin"),
    }
    for name in MESH_NAMES:
        tags[name] = _short(runtime_part, mesh_part, name)
    return {name: f"{repository(name)}:{tags[name]}" for name in NAMES}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "egress-mesh", "wheels")


def _pip(args: list[str], what: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageBuildError(f"{what} failed ({' '.join(argv)}):\n{(proc.stdout + proc.stderr)[-3000:]}")


def download_dependency_wheels(python_version: str, say: Progress, root: Path = ROOT) -> Path:
    """Binary wheels of every dependency (and pip itself) for ``python_version`` (``"3.11"``) on
    this machine's architecture, downloaded once and cached."""
    reqs = requirements(root)
    machine = platform.machine()
    key = _short(python_version, machine, *reqs)
    target = _cache_dir() / f"py{python_version}-{machine}-{key}"
    if (target / "requirements.txt").is_file():
        return target
    say(f"downloading dependency wheels for Python {python_version} into {target}")
    _cache_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=_cache_dir()))
    abi = "cp" + python_version.replace(".", "")
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in (17, 28, 31, 34, 36)]
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    args = ["download", "--only-binary=:all:", "--dest", str(tmp), "--python-version", python_version]
    args += ["--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in platforms:
        args += ["--platform", tag]
    _pip([*args, *reqs, "pip"], f"downloading wheels for Python {python_version}")
    pip_wheels = sorted(tmp.glob("pip-*.whl"))
    if not pip_wheels:
        raise ImageBuildError("pip download did not fetch a pip wheel")
    pip_wheels[-1].rename(tmp / "pip.whl")
    (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def build_mesh_wheel(dest: Path, root: Path = ROOT) -> Path:
    """A pure wheel of egress-mesh (from the checkout, or packed from the installed package)."""
    try:
        return mesh_source(root).build_wheel(dest)
    except SourceError as exc:
        raise ImageBuildError(str(exc)) from None


def assemble_context(context: Path, deps: Path, mesh_wheel: Path | None, root: Path = ROOT) -> Path:
    """Lay out the build context: Dockerfile, wheels/deps, wheels/mesh, standin/."""
    shutil.copy2(root / IMAGES_DIR / "Dockerfile", context / "Dockerfile")
    shutil.copytree(deps, context / "wheels/deps")
    (context / "wheels/mesh").mkdir(parents=True)
    shutil.copy2(deps / "pip.whl", context / "wheels/mesh/pip.whl")
    if mesh_wheel is not None:
        shutil.copy2(mesh_wheel, context / "wheels/mesh" / mesh_wheel.name)
    shutil.copytree(
        root / IMAGES_DIR / "standin",
        context / "standin",
        ignore=lambda d, names: [n for n in names if skipped(Path(d, n))],
    )
    return context


def _build(client, context: Path, target: str, base: str, tag: str | None, say: Progress) -> str:
    """``docker build --target TARGET``; returns the image id. Streams build output to ``say``."""
    import docker

    kwargs = {"tag": tag} if tag else {}
    labels = {LABEL: target}
    stream = client.api.build(
        path=str(context),
        target=target,
        buildargs={"BASE_IMAGE": base},
        labels=labels,
        rm=True,
        forcerm=True,
        decode=True,
        **kwargs,
    )
    image_id = ""
    pending = ""
    tail: list[str] = []
    try:
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(f"building {target} failed: {chunk['error'].strip()}\n" + "".join(tail))
            line = chunk.get("stream", "")
            if line.strip():
                tail = (tail + [line])[-15:]
                # show the steps that really run, not the ones answered from the build cache
                if line.startswith("Step "):
                    instruction = line.split(":", 1)[-1].strip().split(" ", 1)[0].upper()
                    pending = line.strip() if instruction in ("RUN", "COPY", "ADD") else ""
                elif pending:
                    if "Using cache" not in line:
                        say(f"  [{target}] {pending}")
                    pending = ""
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"building {target} failed: {exc}") from None
    if not image_id and tag:
        image_id = client.images.get(tag).id
    return image_id


def _python_version(client, image_id: str) -> str:
    out = client.containers.run(
        image_id,
        ["python3", "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        remove=True,
    )
    return out.decode().strip()


def resolve_base(client, base_image: str | None, say: Progress) -> str:
    if base_image is None:
        try:
            return ensure_base_image(progress=say, client=client)
        except BaseImageError as exc:
            raise ImageBuildError(str(exc)) from None
    if not image_exists(client, base_image):
        say(f"pulling base image {base_image}")
        try:
            client.images.pull(base_image)
        except Exception as exc:
            raise ImageBuildError(
                f"base image {base_image} is not available locally and cannot be pulled ({exc}); "
                "omit --base-image to build a Debian base from the host's package mirror"
            ) from None
    return base_image


def build_all(
    base_image: str | None = None,
    progress: Callable[[str], None] | None = None,
    client=None,
    names: Iterable[str] = NAMES,
) -> dict[str, str]:
    """Build what is missing; return ``{short name: "egress-mesh/NAME:TAG"}`` for ``names``."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    client = client or docker_client(ImageBuildError)
    base = resolve_base(client, base_image, say)
    refs = {name: ref for name, ref in compute_tags(client.images.get(base).id).items() if name in set(names)}
    missing = [name for name, ref in refs.items() if not image_exists(client, ref)]
    if not missing:
        return refs
    say(f"building images: {', '.join(missing)} (base {base})")
    with tempfile.TemporaryDirectory(prefix="egress-mesh-build-") as tmp:
        os_context = Path(tmp, "os")
        os_context.mkdir()
        shutil.copy2(ROOT / IMAGES_DIR / "Dockerfile", os_context / "Dockerfile")
        os_id = _build(client, os_context, "os", base, None, say)
        python_version = _python_version(client, os_id)
        deps = download_dependency_wheels(python_version, say)
        mesh_wheel = None
        if set(missing) & set(MESH_NAMES):
            mesh_wheel = build_mesh_wheel(Path(tmp, "dist"))
        context = Path(tmp, "context")
        context.mkdir()
        assemble_context(context, deps, mesh_wheel)
        for name in missing:
            _build(client, context, name, base, refs[name], say)
            say(f"built {refs[name]}")
    return refs


def save(refs: dict[str, str] | Iterable[str], path: str | os.PathLike, client=None) -> list[Path]:
    """``docker save REF`` each image into ``path`` (a directory) as ``NAME.tar``; returns the files.

    Each archive names exactly the ref asked for (``docker save`` by image would name the image's
    first tag, and Docker sorts tags, so a content tag could win over the run tag the pods use).
    The Kubernetes backends import these (``k3s ctr images import``, ``kind load image-archive``)."""
    client = client or docker_client(ImageBuildError)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    items = refs.values() if isinstance(refs, dict) else refs
    files = []
    for ref in items:
        name = ref.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        file = out / f"{name}.tar"
        with open(file, "wb") as f:
            for chunk in client.api.get_image(ref):
                f.write(chunk)
        files.append(file)
    return files


def prune(keep: dict[str, str] | Iterable[str], client=None) -> list[str]:
    """Remove older tags of the egress-mesh images (everything but ``keep``); returns what went."""
    client = client or docker_client(ImageBuildError)
    kept = set(keep.values() if isinstance(keep, dict) else keep)
    removed = []
    for name in NAMES:
        for image in client.images.list(name=repository(name)):
            for tag in image.tags:
                if tag.startswith(repository(name) + ":") and tag not in kept:
                    try:
                        client.images.remove(tag, noprune=False)
                        removed.append(tag)
                    except Exception:  # still used by a container: leave it
                        pass
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.images", description="build every egress-mesh image"
    )
    parser.add_argument(
        "--base-image", help="base image (default: build egress-mesh/debian-base with debootstrap)"
    )
    parser.add_argument("--save", metavar="DIR", help="also docker save each image into DIR/NAME.tar")
    parser.add_argument("--prune", action="store_true", help="remove older tags of the egress-mesh images")
    args = parser.parse_args(argv)
    try:
        refs = build_all(args.base_image)
        for name, ref in refs.items():
            print(f"{name}\t{ref}")
        if args.save:
            for file in save(refs, args.save):
                print(f"saved {file}")
        if args.prune:
            for tag in prune(refs):
                print(f"removed {tag}")
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
