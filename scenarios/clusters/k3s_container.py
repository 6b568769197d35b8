"""k3s in one Docker container, started with testcontainers' k3s module.

For hosts that can pull ``rancher/k3s`` but have neither k3s nor kind/k3d. Images are copied into
the container with ``docker cp`` and imported into its containerd with ``ctr images import``.
The container is ``<cluster name>-k3s``; ownership is ``CreatedCluster``'s (a container of that
name the harness did not start is used only with ``--reuse`` and never removed). With ``keep``
the container outlives the run (no Ryuk reaper).
"""

from __future__ import annotations

from pathlib import Path

from scenarios.clusters.base import BackendOptions, BackendUnavailable, OpResult
from scenarios.clusters.created import CreatedCluster
from scenarios.clusters.k3d import k3s_image

ARCHIVE_IN_CONTAINER = "/tmp/egress-mesh-images.tar"
API_PORT = 6443


def copy_argv(archive: str, container: str) -> list[str]:
    return ["docker", "cp", archive, f"{container}:{ARCHIVE_IN_CONTAINER}"]


def import_argv(container: str) -> list[str]:
    return ["docker", "exec", container, "ctr", "-n", "k8s.io", "images", "import", ARCHIVE_IN_CONTAINER]


def node_images_argv(container: str) -> list[str]:
    return ["docker", "exec", container, "ctr", "-n", "k8s.io", "images", "ls", "-q"]


def external_kubeconfig(config_yaml: str, host: str, port: int | str) -> str:
    """k3s writes ``https://127.0.0.1:6443``; from the host it is the mapped port."""
    return config_yaml.replace(f"https://127.0.0.1:{API_PORT}", f"https://{host}:{port}")


class K3sContainerCluster(CreatedCluster):
    name = "k3s-container"
    binary = "docker"
    delete_hint = "docker rm -f {name}-k3s"
    coredns_mode = "k3s"

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.container_name = f"{self.cluster_name}-k3s"
        self.container = None  # testcontainers K3SContainer, when started by this run

    def _docker(self):
        try:
            import docker

            client = docker.from_env()
            client.ping()
            return client
        except Exception as error:  # docker SDK raises several unrelated types when no engine answers
            raise BackendUnavailable(f"k3s-container: no Docker engine answers ({error})") from None

    def _find(self):
        matches = self._docker().containers.list(all=True, filters={"name": self.container_name})
        return next((c for c in matches if c.name == self.container_name), None)

    def exists(self) -> bool:
        return self._find() is not None

    def _attach(self) -> None:
        container = self._find()
        if container is None or container.status != "running":
            raise BackendUnavailable(
                f"k3s-container: container {self.container_name} is not running; start it "
                f"(docker start {self.container_name}) or remove it (python -m scenarios clean)"
            )
        config = container.exec_run(["cat", "/etc/rancher/k3s/k3s.yaml"]).output.decode()
        port = container.ports[f"{API_PORT}/tcp"][0]["HostPort"]
        Path(self.kubeconfig).write_text(external_kubeconfig(config, "127.0.0.1", port))

    def _start(self) -> None:
        self._docker()
        from testcontainers.core.config import testcontainers_config
        from testcontainers.k3s import K3SContainer

        if self.options.keep:
            testcontainers_config.ryuk_disabled = True
        image = k3s_image(self.options.k8s_version)
        container = K3SContainer(image=image).with_name(self.container_name)
        try:
            container.start()
        except Exception as error:  # pull refused, cgroup mount denied, ...
            raise BackendUnavailable(f"k3s-container: cannot start {image}: {error}") from None
        self.container = container
        Path(self.kubeconfig).write_text(container.config_yaml())

    def _remove(self) -> None:
        container = self._find()
        if container is not None:
            container.remove(force=True)

    def _load_archive(self, archive: str) -> OpResult:
        copied = self._run(copy_argv(archive, self.container_name))
        if not copied.ok:
            return copied
        imported = self._run(import_argv(self.container_name))
        imported.stdout = copied.stdout + imported.stdout
        return imported

    def node_images(self) -> OpResult:
        return self._run(node_images_argv(self.container_name))
