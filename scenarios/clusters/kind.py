"""kind clusters, created and deleted by the harness with the ``kind`` program (v0.33.0 flags).

Every command is an argument list built by a function below (tested against recording fake
binaries); ownership (create, reuse, never delete what the harness did not create) is
``CreatedCluster``'s.
"""

from __future__ import annotations

from pathlib import Path

from scenarios.clusters.base import OpResult
from scenarios.clusters.created import CREATE_TIMEOUT, CreatedCluster
from scenarios.clusters.kubernetes import pick_version

KIND_VERSION = "v0.33.0"
#: minor -> node image version pinned with the digest kind v0.33.0 publishes for it
KIND_NODE_IMAGES: dict[str, str] = {
    "1.35": "1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
    "1.36": "1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
    "1.37": "1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
}
WAIT = "120s"


def node_image(version: str | None) -> str:
    return f"kindest/node:v{pick_version(version, KIND_NODE_IMAGES)}"


def create_argv(name: str, image: str, kubeconfig: str) -> list[str]:
    """``--kubeconfig`` keeps the user's ``~/.kube/config`` untouched."""
    return ["kind", "create", "cluster", "--name", name, "--image", image, "--kubeconfig", kubeconfig,
            "--wait", WAIT]  # fmt: skip


def delete_argv(name: str, kubeconfig: str) -> list[str]:
    return ["kind", "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig]


def get_clusters_argv() -> list[str]:
    return ["kind", "get", "clusters"]


def get_kubeconfig_argv(name: str) -> list[str]:
    return ["kind", "get", "kubeconfig", "--name", name]


def load_archive_argv(archive: str, name: str) -> list[str]:
    return ["kind", "load", "image-archive", archive, "--name", name]


def node_images_argv(name: str) -> list[str]:
    """The images in the control-plane node's containerd, as the kubelet sees them."""
    return ["docker", "exec", f"{name}-control-plane", "ctr", "--namespace=k8s.io", "images", "ls", "-q"]


def version_argv() -> list[str]:
    return ["kind", "version"]


class KindCluster(CreatedCluster):
    name = "kind"
    binary = "kind"
    delete_hint = "kind delete cluster --name {name}"

    def exists(self) -> bool:
        result = self.tool_ok(get_clusters_argv(), "listing kind clusters")
        return self.cluster_name in result.stdout.split()

    def _start(self) -> None:
        argv = create_argv(self.cluster_name, node_image(self.options.k8s_version), self.kubeconfig)
        self.tool_ok(argv, f"creating cluster {self.cluster_name}", timeout=CREATE_TIMEOUT)

    def _attach(self) -> None:
        result = self.tool_ok(get_kubeconfig_argv(self.cluster_name), "reading the kubeconfig")
        Path(self.kubeconfig).write_text(result.stdout)

    def _remove(self) -> None:
        self.tool_ok(delete_argv(self.cluster_name, self.kubeconfig), f"deleting cluster {self.cluster_name}")

    def _load_archive(self, archive: str) -> OpResult:
        return self.tool(load_archive_argv(archive, self.cluster_name), timeout=CREATE_TIMEOUT)

    def node_images(self) -> OpResult:
        return self.tool(node_images_argv(self.cluster_name))
