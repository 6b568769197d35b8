"""The egress boundary's NetworkPolicies on the Docker backend, as host firewall rules
(``docker_firewall.py``, docs/boundary.md): followed after every change and before a pod's
processes start."""

from __future__ import annotations

from mesh.manifests.install import CONTROLLER_NAME
from scenarios.clusters import docker_firewall
from scenarios.clusters.base import MeshOptions
from scenarios.clusters.docker.engine import PodStartError
from scenarios.clusters.docker.hooks import DockerHook
from scenarios.clusters.docker.pods import Pod


class BoundaryHook(DockerHook):
    what = "egress boundary"

    def __init__(self, cluster) -> None:
        super().__init__(cluster)
        self.firewall = docker_firewall.HostFirewall(cluster.run_id)

    def capabilities(self) -> frozenset[str]:
        return frozenset({"network-policy"}) if docker_firewall.available() else frozenset()

    def sandbox_started(self, pod: Pod) -> list[str]:
        try:
            return self.objects_changed()
        except docker_firewall.FirewallError as exc:
            raise PodStartError(f"the egress boundary cannot be enforced: {exc}") from None

    def objects_changed(self) -> list[str]:
        mesh = self.cluster.mesh_options or MeshOptions()
        return docker_firewall.enforce(
            self.firewall, self.cluster.store.all(), self.endpoints, mesh.mesh_name, mesh.mesh_namespace
        )

    def endpoints(self) -> list[docker_firewall.Endpoint]:
        """Every pod (and the controller) with the addresses of all its networks."""
        api = self.cluster.engine.client.api
        found = [
            docker_firewall.Endpoint(
                pod.namespace,
                pod.name,
                dict(pod.labels),
                docker_firewall.container_addresses(api, pod.sandbox),
                docker_firewall.named_ports(pod.spec),
            )
            for pod in self.cluster.runtime.pods.values()
            if pod.sandbox
        ]
        if self.cluster.controller:
            mesh = self.cluster.mesh_options or MeshOptions()
            addresses = docker_firewall.container_addresses(api, self.cluster.controller)
            found.append(
                docker_firewall.Endpoint(
                    mesh.mesh_namespace, CONTROLLER_NAME, {"app": CONTROLLER_NAME}, addresses
                )
            )
        return found

    @staticmethod
    def cleanup(run_id: str | None) -> list[str]:
        return docker_firewall.remove_chains(run_id)
