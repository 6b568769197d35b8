"""Pods on Docker: a sandbox container owning the network namespace, then (in a meshed namespace)
the pod spec through the same injector as the webhook: the init container runs to completion
(NET_ADMIN), the sidecar (UID 1500) and the app containers join the sandbox's network namespace.

Deployments keep ``replicas`` pods of their template; Services are network aliases of their pods'
sandboxes (``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesh.api.proxyconfig import CONFIG_PORT
from mesh.api.resources import DEFAULT_MESHCONFIG_NAME
from mesh.manifests.install import CONTROLLER_NAME
from scenarios.clusters.base import OpResult, join
from scenarios.clusters.docker.engine import ContainerSpec, PodStartError
from scenarios.clusters.docker.naming import (
    CLUSTER_DOMAIN,
    resolve_env,
    selector_matches,
    service_aliases,
    template_hash,
)

if TYPE_CHECKING:
    from scenarios.clusters.docker.cluster import DockerCluster

READY_EVENT = '"event": "config"'


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    spec: dict[str, Any]
    owner: str | None = None
    template: str = ""
    sandbox: str = ""
    ip: str = ""
    #: container name in the pod -> docker container name
    containers: dict[str, str] = field(default_factory=dict)
    init_containers: dict[str, str] = field(default_factory=dict)
    failed: str | None = None

    @property
    def app_containers(self) -> list[str]:
        return [c["name"] for c in self.spec.get("containers") or ()]


class PodRuntime:
    """The pods of one cluster, started from Pod and Deployment objects."""

    def __init__(self, cluster: DockerCluster) -> None:
        self.cluster = cluster
        self.pods: dict[tuple[str, str], Pod] = {}

    @property
    def engine(self):
        return self.cluster.engine

    # objects -> pods -------------------------------------------------------------------------------
    def reconcile(self, obj: dict[str, Any]) -> list[str]:
        kind = obj["kind"]
        meta = obj["metadata"]
        if kind == "Deployment":
            return self._reconcile_deployment(obj)
        if kind == "Pod":
            if (meta["namespace"], meta["name"]) in self.pods:
                return []
            pod = Pod(meta["namespace"], meta["name"], dict(meta.get("labels") or {}), obj.get("spec") or {})
            return self._start_pod(pod, obj)
        if kind == "Service":
            return self._refresh_aliases(meta["namespace"], (obj.get("spec") or {}).get("selector") or {})
        return []

    def _reconcile_deployment(self, obj: dict[str, Any]) -> list[str]:
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        digest = template_hash(template)
        replicas = int(spec.get("replicas", 1))
        current = [p for p in self.pods.values() if (p.namespace, p.owner) == (ns, name)]
        stale = [p for p in current if p.template != digest or p.failed]
        actions = self.remove(stale)
        alive = [p for p in current if p not in stale]
        actions += self.remove(alive[replicas:])
        for _ in range(replicas - len(alive[:replicas])):
            pod_name = f"{name}-{digest[:10]}-{secrets.token_hex(3)[:5]}"
            tmeta = template.get("metadata") or {}
            pod = Pod(ns, pod_name, dict(tmeta.get("labels") or {}), {}, owner=name, template=digest)
            pod_obj = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**copy.deepcopy(tmeta), "name": pod_name, "namespace": ns},
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            actions += self._start_pod(pod, pod_obj)
        return actions

    def _services_for(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        aliases = []
        for (kind, ns, name), svc in self.cluster.store.objects.items():
            if kind != "Service" or ns != namespace:
                continue
            selector = (svc.get("spec") or {}).get("selector") or {}
            if selector and selector_matches(selector, labels):
                aliases += service_aliases(name, ns)
        return aliases

    def _refresh_aliases(self, namespace: str, selector: Mapping[str, str]) -> list[str]:
        """A Service added after its pods: reconnect their sandboxes with the new aliases."""
        network = self.cluster.mesh_network
        actions = []
        for pod in self.pods.values():
            if pod.namespace != namespace or not selector or not selector_matches(selector, pod.labels):
                continue
            aliases = self._services_for(namespace, pod.labels)
            current = set((self.engine.networks(pod.sandbox).get(network) or {}).get("Aliases") or ())
            if set(aliases) <= current:
                continue
            self.engine.disconnect(pod.sandbox, network)
            actions.append(self.engine.connect(pod.sandbox, network, aliases))
            pod.ip = self.engine.ip(pod.sandbox, network)
        return actions

    # starting ----------------------------------------------------------------------------------------
    def _inject(self, pod_obj: dict[str, Any]) -> dict[str, Any]:
        mesh = self.cluster.mesh_options
        if mesh is None:
            return pod_obj
        from mesh.api.proxyconfig import Exclusions
        from mesh.api.resources import MeshConfig, Namespace
        from mesh.controller.injector import InjectionSettings, inject_pod, is_monitored

        store = self.cluster.store
        ns_obj = store.get(("Namespace", "", pod_obj["metadata"]["namespace"]))
        namespace = Namespace.from_object(ns_obj) if ns_obj is not None else None
        if not is_monitored(namespace, mesh.mesh_name):
            return pod_obj
        mc_obj = store.get(("MeshConfig", mesh.mesh_namespace, DEFAULT_MESHCONFIG_NAME))
        mc = MeshConfig.from_object(mc_obj) if mc_obj else MeshConfig()
        proxy = self.cluster.image("egress-mesh/proxy")
        settings = InjectionSettings(
            proxy_image=proxy,
            init_image=proxy,
            controller_url=f"http://{CONTROLLER_NAME}.{mesh.mesh_namespace}.svc.{CLUSTER_DOMAIN}:{CONFIG_PORT}",
            mesh_name=mesh.mesh_name,
            exclusions=Exclusions(
                ip_ranges=mc.outbound_ip_range_exclusions,
                ports=mc.outbound_port_exclusions,
                include_ip_ranges=mc.outbound_ip_range_inclusions,
            ),
            image_pull_policy="Never",
        )
        return inject_pod(pod_obj, settings, namespace)

    def _container_spec(
        self, pod: Pod, container: dict[str, Any], role: str, fields: dict[str, str]
    ) -> ContainerSpec:
        security = container.get("securityContext") or {}
        pod_security = pod.spec.get("securityContext") or {}
        uid = security.get("runAsUser", pod_security.get("runAsUser"))
        gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
        user = None if uid is None else (f"{uid}:{gid}" if gid is not None else str(uid))
        spec = ContainerSpec(
            name=f"{self.cluster.prefix}-{pod.namespace}-{pod.name}-{container['name']}",
            image=self.cluster.image(str(container.get("image", ""))),
            entrypoint=list(container["command"]) if container.get("command") else None,
            command=list(container["args"])
            if container.get("args")
            else ([] if container.get("command") else None),
            env=resolve_env(container.get("env") or (), fields),
            user=user,
            network=f"container:{pod.sandbox}",
            cap_add=list((security.get("capabilities") or {}).get("add") or ()),
            labels=self.engine.labels(
                role=role, pod=f"{pod.namespace}/{pod.name}", container=container["name"]
            ),
            workdir=container.get("workingDir"),
        )
        for hook in self.cluster.hooks:
            hook.container_spec(pod, container, spec)
        return spec

    def _start_pod(self, pod: Pod, pod_obj: dict[str, Any]) -> list[str]:
        """Start the pod's containers; a failure is kept in ``pod.failed`` (wait_ready reports it)."""
        sandbox_image = self.cluster.image("egress-mesh/curl")
        self.pods[(pod.namespace, pod.name)] = pod
        actions: list[str] = []
        try:
            pod_obj = self._inject(pod_obj)
        except ValueError as exc:  # mesh.controller.injector.InjectionError: a bad annotation
            pod.failed = f"sidecar injection refused the pod: {exc}"
            return actions
        pod.spec = pod_obj.get("spec") or {}
        pod.labels = dict((pod_obj.get("metadata") or {}).get("labels") or {})
        try:
            self._run_pod(pod, sandbox_image, actions)
        except PodStartError as exc:
            pod.failed = str(exc)
            actions.append(f"# pod {pod.namespace}/{pod.name} failed: {exc}")
        return actions

    def _run_pod(self, pod: Pod, sandbox_image: str, actions: list[str]) -> None:
        cluster = self.cluster
        sandbox = ContainerSpec(
            name=f"{cluster.prefix}-{pod.namespace}-{pod.name}",
            image=sandbox_image,
            command=["sleep", "infinity"],
            network=cluster.mesh_network,
            aliases=self._services_for(pod.namespace, pod.labels),
            hostname=pod.name[:63],
            labels=self.engine.labels(role="sandbox", pod=f"{pod.namespace}/{pod.name}"),
        )
        pod.sandbox = self.engine.start(sandbox).name
        actions.append(sandbox.cli())
        if cluster.options.external != "internet":
            actions.append(self.engine.connect(pod.sandbox, cluster.external_network))
        pod.ip = self.engine.ip(pod.sandbox, cluster.mesh_network)
        for hook in cluster.hooks:  # before any of the pod's own processes run
            actions += hook.sandbox_started(pod)
        fields = {
            "metadata.name": pod.name,
            "metadata.namespace": pod.namespace,
            "spec.serviceAccountName": pod.spec.get("serviceAccountName") or "default",
            "spec.nodeName": "docker",
            "status.podIP": pod.ip,
            "status.hostIP": pod.ip,
        }
        for init in pod.spec.get("initContainers") or ():
            if init.get("restartPolicy") == "Always":  # a native sidecar: keeps running beside the app
                spec = self._container_spec(pod, init, "container", fields)
                pod.containers[init["name"]] = self.engine.start(spec).name
                actions.append(spec.cli())
                continue
            spec = self._container_spec(pod, init, "init", fields)
            started = self.engine.start(spec)
            pod.init_containers[init["name"]] = started.name
            actions.append(spec.cli().replace("docker run -d", "docker run", 1))
            code = started.wait(timeout=120).get("StatusCode", 1)
            if code != 0:
                out, err = self.engine.logs(started.name)
                raise PodStartError(
                    f"init container {init['name']} exited with code {code}: {(err or out).strip()[-800:]}"
                )
        for app in pod.spec.get("containers") or ():
            spec = self._container_spec(pod, app, "container", fields)
            pod.containers[app["name"]] = self.engine.start(spec).name
            actions.append(spec.cli())

    # looking at pods ----------------------------------------------------------------------------------
    def not_ready(self, pod: Pod) -> str | None:
        """Why ``pod`` is not ready (None: it is): failed, a container stopped, the sidecar has no config."""
        if pod.failed:
            return pod.failed
        for name, cname in pod.containers.items():
            state = self.engine.state(cname)
            if not state.get("Running"):
                out, err = self.engine.logs(cname)
                tail = (err or out).strip()[-800:]
                pod.failed = f"container {name} exited with code {state.get('ExitCode')}: {tail}"
                return pod.failed
        sidecar = pod.containers.get("sidecar")
        if sidecar:
            out, err = self.engine.logs(sidecar)
            if READY_EVENT not in out:
                last = (out.strip().splitlines() or err.strip().splitlines() or ["(no output)"])[-1]
                return (
                    f"the sidecar has not received its config from the controller yet (last log line: {last})"
                )
        return None

    def select(self, namespace: str, selector: str) -> list[Pod]:
        return sorted(
            (
                p
                for p in self.pods.values()
                if p.namespace == namespace and selector_matches(selector, p.labels)
            ),
            key=lambda p: p.name,
        )

    def pick(self, namespace: str, selector: str) -> Pod | None:
        """The first pod matching ``selector``, preferring one that did not fail."""
        pods = self.select(namespace, selector)
        ready = [p for p in pods if not p.failed]
        return (ready or pods or [None])[0]

    def logs(self, pod: Pod, container: str | None) -> OpResult:
        name = container or (pod.app_containers or [""])[0]
        target = pod.containers.get(name) or pod.init_containers.get(name)
        if target is None:
            return OpResult("docker logs ?", 1, stderr=f"container {name} is not valid for pod {pod.name}")
        import docker

        command = join(["docker", "logs", target])
        try:
            out, err = self.engine.logs(target)
        except docker.errors.APIError as exc:
            return OpResult(command, 1, stderr=f"docker logs failed: {exc.explanation or exc}")
        return OpResult(command, 0, out, err)

    def exec(self, pod: Pod, container: str, argv: Sequence[str]) -> OpResult:
        target = pod.containers.get(container)
        if target is None:
            known = ", ".join(pod.containers)
            return OpResult(
                join(["docker", "exec", "?", *argv]),
                1,
                stderr=f"container {container} is not valid for pod {pod.name} (containers: {known})",
            )
        import docker

        command = join(["docker", "exec", target, *argv])
        try:
            code, out, err = self.engine.exec(target, list(argv))
        except docker.errors.APIError as exc:
            return OpResult(command, 1, stderr=f"docker exec failed: {exc.explanation or exc}")
        if code != 0 and not err:
            err = f"command terminated with exit code {code}"
        return OpResult(command, code, out, err)

    # removing -----------------------------------------------------------------------------------------
    def remove(self, pods: Sequence[Pod]) -> list[str]:
        names = []
        for pod in pods:
            names += [*pod.containers.values(), *pod.init_containers.values()]
            if pod.sandbox:
                names.append(pod.sandbox)
            self.pods.pop((pod.namespace, pod.name), None)
        self.engine.remove(names)
        return [join(["docker", "rm", "-f", *names])] if names else []
