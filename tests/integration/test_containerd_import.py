"""The Kubernetes backends' images, exported for real and imported into a real containerd.

``load_images`` runs unchanged (``docker tag`` to the run tag, ``docker save`` per image); the
backend's own loader command then reaches a stand-in ``kind``/``k3s`` on PATH that runs, against
the Docker engine's own containerd, the ``ctr`` import those programs run inside a node:

- kind v0.33.0 (``nodeutils.LoadImageArchive``): ``ctr --namespace=k8s.io images import
  --all-platforms --digests --snapshotter=overlayfs -`` with the archive on stdin;
- k3s: ``k3s ctr -n k8s.io images import ARCHIVE`` (k3d v5.9.0 and k3s-container run the same
  ``ctr images import ARCHIVE`` in their nodes).

The node namespace ``k8s.io`` becomes a scratch namespace, removed afterwards. The test then
asserts that every image ref the pods will ask for is there: the ones ``meshctl install``
renders, the ones the injector adds with the controller's settings, and the ones of the
scenario manifests after the backend's substitution.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from mesh.controller.injector import InjectionSettings, inject_workload
from scenarios import images
from scenarios.clusters import commands, k3s, k8s_images, kind
from scenarios.clusters import kubernetes as k8s
from scenarios.clusters.base import BackendOptions, MeshOptions

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SOCKETS = ("/run/docker/containerd/containerd.sock", "/run/containerd/containerd.sock")
MANIFESTS = sorted((ROOT / "scenarios" / "manifests").glob("*.yaml"))

FRONT = """#!{python}
# {program} stand-in: the in-node ctr import of the real program, against a real containerd.
import os, subprocess, sys
ctr = [{ctr!r}, "--address", {socket!r}, "--namespace", {namespace!r}]
prog, args = os.path.basename(sys.argv[0]), sys.argv[1:]
if prog == "kind" and args[:2] == ["load", "image-archive"]:
    with open(args[2], "rb") as archive:
        sys.exit(subprocess.call(
            ctr + ["images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs", "-"],
            stdin=archive))
if prog == "docker" and args[:2] == ["exec", "egress-mesh-control-plane"]:
    assert args[2:] == ["ctr", "--namespace=k8s.io", "images", "ls", "-q"], args
    sys.exit(subprocess.call(ctr + ["images", "ls", "-q"]))
if prog == "k3s" and args[:3] == ["ctr", "-n", "k8s.io"]:
    sys.exit(subprocess.call(ctr + args[3:]))
if prog == "docker":
    os.execv({docker!r}, [{docker!r}, *args])  # docker tag etc.: the real engine
sys.exit("unexpected: " + " ".join(sys.argv))
"""


def pod_images(docs) -> set[str]:
    found = set()
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        spec = doc.get("spec") or {}
        pod = spec if doc.get("kind") == "Pod" else (spec.get("template") or {}).get("spec") or {}
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            found.add(container["image"])
    return found


@pytest.fixture(scope="module")
def containerd():
    if os.geteuid() != 0:
        pytest.skip("containerd's socket belongs to root")
    ctr = shutil.which("ctr")
    if ctr is None:
        pytest.skip("ctr is not installed (Debian: apt-get install containerd, which docker.io depends on)")
    socket = next((s for s in SOCKETS if Path(s).is_socket()), None)
    if socket is None:
        pytest.skip(f"no containerd socket at {' or '.join(SOCKETS)}")
    return ctr, socket


@pytest.fixture(scope="module")
def built():
    try:
        return images.build_all(progress=lambda line: None)
    except images.ImageBuildError as error:
        pytest.skip(f"images cannot be built here: {error}")


@pytest.fixture
def scratch(containerd, tmp_path, monkeypatch):
    """Stand-in kind/k3s/docker on PATH that import into a scratch namespace, removed afterwards."""
    ctr, socket = containerd
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    namespace = f"egress-mesh-test-{uuid.uuid4().hex[:8]}"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for program in ("kind", "k3s", "docker"):
        text = FRONT.format(
            python=sys.executable, program=program, ctr=ctr, socket=socket, namespace=namespace, docker=docker
        )
        (bindir / program).write_text(text)
        (bindir / program).chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base = [ctr, "--address", socket, "--namespace", namespace]

    def listing() -> list[str]:
        proc = subprocess.run([*base, "images", "ls", "-q"], capture_output=True, text=True, check=True)
        return proc.stdout.split()

    yield bindir, listing
    refs = listing()
    if refs:
        subprocess.run([*base, "images", "rm", "--sync", *refs], capture_output=True, check=True)
    subprocess.run([ctr, "--address", socket, "namespaces", "rm", namespace], capture_output=True, check=True)


def rendered_refs(cluster: k8s.KubernetesCluster) -> set[str]:
    """Every image ref the pods of an install and of the scenarios ask for."""
    argv = commands.install_argv(MeshOptions(), cluster.registry, cluster.image_tag, cluster.pull_policy)
    proc = subprocess.run(
        [sys.executable, "-m", "mesh.cli", *argv[1:], "--dry-run"], capture_output=True, text=True, check=True
    )
    install = [d for d in yaml.safe_load_all(proc.stdout) if d]
    refs = pod_images(install)
    [controller] = [d for d in install if d["kind"] == "Deployment"]
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    settings = InjectionSettings(  # what mesh/controller/__main__.py builds from these flags
        proxy_image=args[args.index("--proxy-image") + 1], init_image=args[args.index("--init-image") + 1]
    )
    for path in MANIFESTS:
        text = k8s_images.substitute_images(path.read_text(), cluster.images, cluster.pull_policy)
        docs = [d for d in yaml.safe_load_all(text) if d]
        refs |= pod_images(docs) | pod_images(inject_workload(d, settings) for d in docs)
    return refs


@pytest.mark.parametrize("backend", [kind.KindCluster, k3s.K3sCluster], ids=["kind", "k3s"])
def test_every_ref_the_pods_use_is_in_containerd_after_load_images(backend, built, scratch, monkeypatch):
    bindir, listing = scratch
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    cluster = backend(BackendOptions())
    results = cluster.load_images(list(built.values()))
    assert all(r.ok for r in results)
    present = listing()
    wanted = rendered_refs(cluster)
    assert {k8s_images.short_name(ref) for ref in wanted} == set(images.NAMES)
    assert all(ref.endswith(f":{cluster.image_tag}") for ref in wanted), wanted
    assert k8s_images.missing_refs(sorted(wanted), present) == [], f"containerd has only: {present}"
    assert cluster._check_loaded(sorted(wanted))  # the backend's own check agrees
    subprocess.run(["docker", "rmi", *cluster.images.values()], capture_output=True)  # the run tags only
