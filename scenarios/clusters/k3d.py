"""k3s in Docker through k3d, created and deleted by pytest-kubernetes's k3d provider.

Same pytest-kubernetes workarounds as the kind backend (name passed as an option, shell-quoted
arguments, manifests on kubectl's stdin). Traefik is disabled as in the article's k3s install.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from scenarios.clusters.kind import KindCluster
from scenarios.clusters.kubernetes import pick_version

K3D_VERSION = "v5.9.0"
#: minor -> k3s release pinned for it (image rancher/k3s:v<version with + replaced by ->)
K3S_RELEASES: dict[str, str] = {
    "1.35": "1.35.5+k3s1",
    "1.36": "1.36.4+k3s1",
    "1.37": "1.37.0+k3s1",
}


def k3s_release(version: str | None) -> str:
    return pick_version(version, K3S_RELEASES)


def k3s_image(version: str | None) -> str:
    """``rancher/k3s:v1.37.0-k3s1`` (the Docker tag spells ``+`` as ``-``)."""
    return f"rancher/k3s:v{k3s_release(version).replace('+', '-')}"


def provider_version(version: str | None) -> str:
    """pytest-kubernetes's k3d provider builds ``rancher/k3s:v{X}-k3s1`` from X."""
    release = k3s_release(version)
    base, _, suffix = release.partition("+")
    if suffix and suffix != "k3s1":
        raise ValueError(f"k3s release {release}: pytest-kubernetes can only start -k3s1 images")
    return base


def import_argv(archive: str, cluster_name: str) -> list[str]:
    return ["k3d", "image", "import", archive, "--cluster", cluster_name]


def create_extra_options() -> list[str]:
    return ["--k3s-arg", "--disable=traefik@server:*"]


class K3dCluster(KindCluster):
    name = "k3d"
    binary = "k3d"

    def provider_version(self) -> str:
        return provider_version(self.options.k8s_version)

    def create_options(self) -> list[str]:
        return create_extra_options()

    def _existing(self) -> bool:
        proc = subprocess.run(["k3d", "cluster", "list", "-o", "json"], capture_output=True, text=True)
        try:
            return any(c.get("name") == self.cluster_name for c in json.loads(proc.stdout or "[]"))
        except json.JSONDecodeError:
            return False

    def _write_kubeconfig(self) -> None:
        proc = subprocess.run(["k3d", "kubeconfig", "get", self.cluster_name], capture_output=True, text=True)
        if proc.returncode == 0:
            Path(self.kubeconfig).write_text(proc.stdout)

    def load_argv(self, archive: str) -> list[str]:
        return import_argv(archive, self.cluster_name)
