"""Image export for the Kubernetes backends, done for real with Docker (no pull: FROM scratch)."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path

import pytest

from scenarios.clusters import k8s_images
from scenarios.clusters import kubernetes as k8s
from scenarios.clusters.base import BackendOptions, OpResult

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:
        pytest.skip(f"no Docker engine answers: {error}")
    return client


@pytest.fixture(scope="module")
def tiny_image(docker_client, tmp_path_factory):
    context = tmp_path_factory.mktemp("tiny")
    (context / "hello.txt").write_text("hello from egress-mesh\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    # 12 hex digits, like the content tags images.build_all gives: they sort before "run-", so an
    # archive named after the image's first tag would carry this one instead of the run tag
    ref = f"egress-mesh/tiny:{uuid.uuid4().hex[:12]}"
    docker_client.images.build(path=str(context), tag=ref, rm=True)
    yield ref
    for image in docker_client.images.list(name="egress-mesh/tiny"):
        for tag in image.tags:
            if tag == ref or tag.startswith("egress-mesh/tiny:run-"):
                docker_client.images.remove(tag, force=True)


def _archive_tags_and_files(path: Path) -> tuple[list[str], dict[str, bytes]]:
    """RepoTags of a ``docker save`` archive and the files in its layers."""
    files: dict[str, bytes] = {}
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        tags = [tag for entry in manifest for tag in entry.get("RepoTags") or []]
        for entry in manifest:
            for layer in entry["Layers"]:
                with tarfile.open(fileobj=archive.extractfile(layer)) as inner:
                    for member in inner.getmembers():
                        if member.isfile():
                            files[member.name] = inner.extractfile(member).read()
    return tags, files


def test_export_writes_an_archive_whose_manifest_lists_the_tag(tiny_image, tmp_path):
    results, files = k8s_images.export_images([tiny_image], tmp_path)
    assert all(r.ok for r in results) and results[0].command.startswith("docker save -o ")
    [archive] = files
    tags, content = _archive_tags_and_files(Path(archive))
    assert tags == [tiny_image]
    assert content["hello.txt"] == b"hello from egress-mesh\n"


class _ArchiveInspector(k8s.KubernetesCluster):
    """A backend whose 'cluster' only records the archives it is handed."""

    name = "inspector"

    def __init__(self) -> None:
        super().__init__(BackendOptions())
        self.seen: list[tuple[list[str], dict[str, bytes]]] = []

    def _load_archive(self, archive: str) -> OpResult:
        self.seen.append(_archive_tags_and_files(Path(archive)))
        return OpResult(f"load {archive}")


def test_load_images_retags_with_one_run_tag_and_hands_over_archives(tiny_image):
    backend = _ArchiveInspector()
    results = backend.load_images([tiny_image])
    expected = f"egress-mesh/tiny:{k8s_images.combined_tag([tiny_image])}"
    assert backend.images == {"tiny": expected}
    assert results[0].command == f"docker tag {tiny_image} {expected}"
    [(tags, content)] = backend.seen
    assert tags == [expected], "the archive must name the run tag the pods use, and only it"
    assert content["hello.txt"] == b"hello from egress-mesh\n"
    manifest = "kind: Pod\nspec:\n  containers: [{name: t, image: egress-mesh/tiny}]"
    assert f"image: {expected}" in k8s_images.substitute_images(manifest, backend.images)
