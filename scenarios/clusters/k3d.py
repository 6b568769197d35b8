"""k3s in Docker through k3d, created and deleted by the harness with the ``k3d`` program (v5.9.0).

Traefik is disabled as in the article's k3s install. ``k3d cluster create`` has no kubeconfig
path option, so it is told to leave the user's kubeconfig alone and the cluster's kubeconfig is
written from ``k3d kubeconfig get``.
"""

from __future__ import annotations

import json
from pathlib import Path

from scenarios.clusters.base import BackendUnavailable, OpResult
from scenarios.clusters.created import CREATE_TIMEOUT, CreatedCluster
from scenarios.clusters.kubernetes import pick_version

K3D_VERSION = "v5.9.0"
#: minor -> k3s release pinned for it (image rancher/k3s:v<version with + replaced by ->)
K3S_RELEASES: dict[str, str] = {
    "1.35": "1.35.5+k3s1",
    "1.36": "1.36.4+k3s1",
    "1.37": "1.37.0+k3s1",
}
TIMEOUT = "300s"


def k3s_release(version: str | None) -> str:
    return pick_version(version, K3S_RELEASES)


def k3s_image(version: str | None) -> str:
    """``rancher/k3s:v1.37.0-k3s1`` (the Docker tag spells ``+`` as ``-``)."""
    release = k3s_release(version)
    if "+" not in release:
        release += "+k3s1"
    return f"rancher/k3s:v{release.replace('+', '-')}"


def create_argv(name: str, image: str) -> list[str]:
    return [
        "k3d", "cluster", "create", name,
        "--image", image,
        "--k3s-arg", "--disable=traefik@server:*",
        "--kubeconfig-update-default=false",
        "--kubeconfig-switch-context=false",
        "--wait", "--timeout", TIMEOUT,
    ]  # fmt: skip


def delete_argv(name: str) -> list[str]:
    return ["k3d", "cluster", "delete", name]


def list_argv() -> list[str]:
    return ["k3d", "cluster", "list", "--output", "json"]


def kubeconfig_argv(name: str) -> list[str]:
    return ["k3d", "kubeconfig", "get", name]


def import_argv(archive: str, name: str) -> list[str]:
    return ["k3d", "image", "import", archive, "--cluster", name]


def node_images_argv(name: str) -> list[str]:
    return ["docker", "exec", f"k3d-{name}-server-0", "ctr", "-n", "k8s.io", "images", "ls", "-q"]


def version_argv() -> list[str]:
    return ["k3d", "version"]


def cluster_names(list_json: str) -> list[str]:
    try:
        clusters = json.loads(list_json or "[]")
    except json.JSONDecodeError:
        raise ValueError(f"k3d cluster list printed no JSON: {list_json[:200]!r}") from None
    return [c.get("name", "") for c in clusters if isinstance(c, dict)]


class K3dCluster(CreatedCluster):
    name = "k3d"
    binary = "k3d"
    delete_hint = "k3d cluster delete {name}"
    coredns_mode = "k3s"

    def exists(self) -> bool:
        result = self.tool_ok(list_argv(), "listing k3d clusters")
        try:
            return self.cluster_name in cluster_names(result.stdout)
        except ValueError as error:
            raise BackendUnavailable(f"k3d: {error}") from None

    def _start(self) -> None:
        argv = create_argv(self.cluster_name, k3s_image(self.options.k8s_version))
        self.tool_ok(argv, f"creating cluster {self.cluster_name}", timeout=CREATE_TIMEOUT)
        self._attach()

    def _attach(self) -> None:
        result = self.tool_ok(kubeconfig_argv(self.cluster_name), "reading the kubeconfig")
        Path(self.kubeconfig).write_text(result.stdout)

    def _remove(self) -> None:
        self.tool_ok(delete_argv(self.cluster_name), f"deleting cluster {self.cluster_name}")

    def _load_archive(self, archive: str) -> OpResult:
        return self.tool(import_argv(archive, self.cluster_name), timeout=CREATE_TIMEOUT)

    def node_images(self) -> OpResult:
        # k3d logs a failed import in a node and still exits 0: the listing is what counts
        return self.tool(node_images_argv(self.cluster_name))
