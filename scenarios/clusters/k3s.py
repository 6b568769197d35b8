"""An existing k3s, installed as the article does (``--disable traefik``).

The kubeconfig comes from ``options.kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config`` or
``/etc/rancher/k3s/k3s.yaml``. Images are imported into k3s's containerd, in the namespace the
kubelet uses, with ``k3s ctr -n k8s.io images import ARCHIVE`` from ``docker save`` archives
(through ``sudo -n`` when not root, since containerd's socket belongs to root). The cluster is
the user's: ``down()`` removes what the harness put there and never the cluster.
"""

from __future__ import annotations

import os
import shutil

from scenarios.clusters.base import BackendUnavailable, OpResult
from scenarios.clusters.kubernetes import KubernetesCluster, default_kubeconfig


def _ctr(as_root: bool) -> list[str]:
    return [*([] if as_root else ["sudo", "-n"]), "k3s", "ctr", "-n", "k8s.io"]


def import_argv(archive: str, as_root: bool = True) -> list[str]:
    return [*_ctr(as_root), "images", "import", archive]


def node_images_argv(as_root: bool = True) -> list[str]:
    return [*_ctr(as_root), "images", "ls", "-q"]


class K3sCluster(KubernetesCluster):
    name = "k3s"
    coredns_mode = "k3s"

    def _create(self) -> None:
        self.kubeconfig = default_kubeconfig(self.options.kubeconfig)
        if not self.kubeconfig:
            raise BackendUnavailable(
                "k3s: no kubeconfig found (tried --kubeconfig, $KUBECONFIG, ~/.kube/config, "
                "/etc/rancher/k3s/k3s.yaml); install k3s as the article does, e.g. "
                "curl -sfL https://get.k3s.io | sh -s - --disable traefik --write-kubeconfig-mode 644"
            )

    def _load_archive(self, archive: str) -> OpResult:
        if not shutil.which("k3s"):
            raise BackendUnavailable("k3s: the k3s binary is not on PATH, so images cannot be imported")
        return self._run(import_argv(archive, as_root=os.geteuid() == 0))

    def node_images(self) -> OpResult:
        return self._run(node_images_argv(as_root=os.geteuid() == 0))
