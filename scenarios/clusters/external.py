"""Any cluster from a kubeconfig, with a registry the harness pushes the images to.

``options.registry`` (e.g. ``registry.example.com:5000/egress-mesh``) receives every image as
``REGISTRY/<short name>:<run tag>``; the mesh is installed with ``--set osm.image.registry=REGISTRY``
and pods pull with ``imagePullPolicy: Always``. Nodes must be able to pull from that registry.
"""

from __future__ import annotations

import subprocess

from scenarios.clusters.base import BackendOptions, BackendUnavailable, OpResult, join
from scenarios.clusters.kubernetes import KubernetesCluster, default_kubeconfig


def push_argv(ref: str) -> list[str]:
    return ["docker", "push", ref]


class ExternalCluster(KubernetesCluster):
    name = "external"
    pull_policy = "Always"

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        if self.options.registry:
            self.registry = self.options.registry.rstrip("/")

    def _create(self) -> None:
        if not self.options.registry:
            raise BackendUnavailable(
                "external: a registry to push images to is required (--registry HOST[:PORT]/PATH), "
                "one that the cluster's nodes can pull from"
            )
        self.kubeconfig = default_kubeconfig(self.options.kubeconfig)
        if not self.kubeconfig:
            raise BackendUnavailable(
                "external: no kubeconfig found (tried --kubeconfig, $KUBECONFIG, ~/.kube/config)"
            )

    def _import_images(self, refs: list[str]) -> list[OpResult]:
        results = []
        for ref in refs:
            proc = subprocess.run(push_argv(ref), capture_output=True, text=True)
            result = OpResult(join(push_argv(ref)), proc.returncode, proc.stdout, proc.stderr)
            if not result.ok:
                raise BackendUnavailable(f"external: {result.command} failed: {proc.stderr.strip()}")
            results.append(result)
        return results
