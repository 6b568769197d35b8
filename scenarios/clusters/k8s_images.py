"""Getting locally built images to a Kubernetes cluster: one run tag, manifests pointed at the
loaded refs, ``docker save`` archives, and containerd's spelling of references."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from mesh.api.load import LoadError, load_text
from scenarios.clusters.base import OpResult, join
from scenarios.images import REPOSITORY_PREFIX


def combined_tag(refs: Iterable[str]) -> str:
    """One tag for a set of content-tagged images, since ``meshctl --set osm.image.tag`` takes one."""
    digest = hashlib.sha256("\n".join(sorted(refs)).encode()).hexdigest()
    return f"run-{digest[:12]}"


def short_name(ref: str) -> str:
    """``egress-mesh/proxy:abc`` -> ``proxy``; ``reg:5000/x/proxy@sha256:..`` -> ``proxy``."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def retag_plan(images: Iterable[str], registry: str, tag: str) -> dict[str, str]:
    """Source ref -> ``REGISTRY/<short>:TAG`` for every image."""
    return {ref: f"{registry.rstrip('/')}/{short_name(ref)}:{tag}" for ref in images}


def _pod_specs(doc: dict) -> Iterable[dict]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    elif isinstance(spec.get("template"), dict):
        yield spec["template"].get("spec") or {}


def substitute_images(manifest: str, images: Mapping[str, str], pull_policy: str | None = None) -> str:
    """Point ``egress-mesh/<short>[:any]`` images at the loaded refs (``images``: short -> ref).

    Returns the manifest unchanged (same text) when no container uses an egress-mesh image."""
    try:
        docs = [document.obj for document in load_text(manifest)]
    except LoadError:
        return manifest  # kubectl says what is wrong with it
    changed = False
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        for spec in _pod_specs(doc):
            for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                image = str(container.get("image", ""))
                if not image.startswith(REPOSITORY_PREFIX):
                    continue
                short = short_name(image)
                if short in images:
                    container["image"] = images[short]
                    if pull_policy:
                        container["imagePullPolicy"] = pull_policy
                    changed = True
    if not changed:
        return manifest
    return yaml.safe_dump_all(docs, sort_keys=False)


def save_display(ref: str, directory: str | Path) -> str:
    return join(["docker", "save", "-o", str(Path(directory) / f"{short_name(ref)}.tar"), ref])


def export_images(refs: Sequence[str], directory: str | Path) -> tuple[list[OpResult], list[str]]:
    """``docker save`` each image into ``DIRECTORY/<short>.tar`` (``scenarios.images.save`` when present)."""
    try:
        from scenarios.images import save
    except ImportError:
        save = None
    if save is not None:
        files = [str(f) for f in save(list(refs), directory)]
        return [OpResult(save_display(ref, directory)) for ref in refs], files
    Path(directory).mkdir(parents=True, exist_ok=True)
    results, files = [], []
    for ref in refs:
        target = Path(directory) / f"{short_name(ref)}.tar"
        argv = ["docker", "save", "-o", str(target), ref]
        proc = subprocess.run(argv, capture_output=True, text=True)
        results.append(OpResult(join(argv), proc.returncode, proc.stdout, proc.stderr))
        files.append(str(target))
    return results, files


def normalize_ref(ref: str) -> str:
    """A reference as containerd and the kubelet spell it: ``egress-mesh/proxy:t`` ->
    ``docker.io/egress-mesh/proxy:t``, ``busybox`` -> ``docker.io/library/busybox:latest``."""
    name, at, digest = ref.partition("@")
    first, slash, _ = name.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name if slash else 'library/' + name}"
    if not at and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + at + digest


def missing_refs(wanted: Iterable[str], present: Iterable[str]) -> list[str]:
    """The refs of ``wanted`` that a ``ctr images ls -q`` listing (``present``) lacks."""
    have = {normalize_ref(ref) for ref in present}
    return [ref for ref in wanted if normalize_ref(ref) not in have]


def docker_tag(source: str, target: str) -> OpResult:
    argv = ["docker", "tag", source, target]
    proc = subprocess.run(argv, capture_output=True, text=True)
    return OpResult(join(argv), proc.returncode, proc.stdout, proc.stderr)
