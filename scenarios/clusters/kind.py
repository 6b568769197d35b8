"""kind clusters created and deleted through pytest-kubernetes's kind provider.

Workarounds for pytest-kubernetes 0.9 defects:
- a name given to the manager's constructor becomes ``pytest-<name>``; the name is passed as a
  ``ClusterOptions`` option to ``create()`` instead, which is used verbatim;
- the provider joins arguments into one shell string, so every argument we add is shell-quoted
  and manifests never go through it (they go to ``kubectl apply -f -`` on stdin);
- it only knows ``kind load docker-image``; we load one ``docker save`` archive with
  ``kind load image-archive`` through the same provider executable.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from scenarios.clusters.base import BackendOptions, BackendUnavailable, OpResult, join
from scenarios.clusters.kubernetes import KubernetesCluster, pick_version, quote, state_dir

KIND_VERSION = "v0.33.0"
#: minor -> node image version pinned with the digest kind v0.33.0 publishes for it
KIND_NODE_IMAGES: dict[str, str] = {
    "1.35": "1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
    "1.36": "1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
    "1.37": "1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
}


def node_image(version: str | None) -> str:
    return f"kindest/node:v{pick_version(version, KIND_NODE_IMAGES)}"


def load_archive_argv(archive: str, cluster_name: str) -> list[str]:
    return ["kind", "load", "image-archive", archive, "--name", cluster_name]


def get_clusters_argv() -> list[str]:
    return ["kind", "get", "clusters"]


def get_kubeconfig_argv(cluster_name: str) -> list[str]:
    return ["kind", "get", "kubeconfig", "--name", cluster_name]


class KindCluster(KubernetesCluster):
    name = "kind"
    harness_owned = True
    binary = "kind"

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.cluster_name = self.options.cluster_name
        self.kubeconfig = str(state_dir() / f"{self.name}-{self.cluster_name}.kubeconfig")
        self.manager = None

    # pytest-kubernetes --------------------------------------------------------------------------------
    def _manager(self):
        from pytest_kubernetes.providers import select_provider_manager

        try:
            manager = select_provider_manager(self.name)()
        except RuntimeError as error:
            raise BackendUnavailable(
                f"{self.name}: the {self.binary} binary is not usable ({error}); install {self.binary} "
                f"(see docs/kubernetes.md) or choose another backend"
            ) from None
        return manager

    def provider_version(self) -> str:
        """What the provider turns into the node image (``kindest/node:v<this>``)."""
        return pick_version(self.options.k8s_version, KIND_NODE_IMAGES)

    def create_options(self) -> list[str]:
        return ["--wait", "120s"]

    def _existing(self) -> bool:
        proc = subprocess.run(get_clusters_argv(), capture_output=True, text=True)
        return self.cluster_name in proc.stdout.split()

    def _write_kubeconfig(self) -> None:
        proc = subprocess.run(get_kubeconfig_argv(self.cluster_name), capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendUnavailable(f"{self.name}: cannot read the kubeconfig: {proc.stderr.strip()}")
        Path(self.kubeconfig).write_text(proc.stdout)

    def _create(self) -> None:
        from pytest_kubernetes.options import ClusterOptions

        self.manager = self._manager()
        if self._existing():
            self._write_kubeconfig()
        options = ClusterOptions(
            cluster_name=self.cluster_name,
            api_version=self.provider_version(),
            kubeconfig_path=Path(self.kubeconfig),
        )
        try:
            self.manager.create(options, timeout=180, options=[quote(o) for o in self.create_options()])
        except subprocess.CalledProcessError as error:
            raise BackendUnavailable(
                f"{self.name}: creating cluster {self.cluster_name} failed: "
                f"{(error.stderr or b'').decode(errors='replace').strip()}"
            ) from None
        except RuntimeError as error:
            raise BackendUnavailable(f"{self.name}: {error}") from None

    def _destroy(self) -> None:
        if self.manager is not None:
            self.manager.delete()

    # images ------------------------------------------------------------------------------------------
    def load_argv(self, archive: str) -> list[str]:
        return load_archive_argv(archive, self.cluster_name)

    def _load_archive(self, archive: str) -> OpResult:
        argv = self.load_argv(archive)
        manager = self.manager or self._manager()
        try:
            proc = manager._exec([quote(a) for a in argv[1:]])
        except subprocess.CalledProcessError as error:
            return OpResult(join(argv), error.returncode, "", (error.stderr or b"").decode(errors="replace"))
        return OpResult(
            join(argv), 0, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
