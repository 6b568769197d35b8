"""The Docker backend: Kubernetes-shaped pods as groups of containers, no cluster needed.

- State is a set of Kubernetes objects (``store.py``) kept in a manifest directory (a host temp
  dir) that the controller container reads; ``apply``/``delete``/``patch`` edit it.
- Pods (``pods.py``): a sandbox container owning a network namespace, the injector's init and
  sidecar containers, the app containers.
- Network ``mesh``: pod IPs, Services as aliases. Network ``external``: the stand-ins, one
  stand-ins (``STANDINS``), one container per external name, so ``httpbin.org`` and
  ``httpstat.us`` have addresses of their own; pods join it too, as a node routes out.
- kubectl/osm command lines are answered by the kubectl emulator (``scenarios/clusters/kubectl.py``).
- Extra wiring (the egress boundary's firewall, ...) lives in hooks (``hooks.py``).
- Everything is labelled ``egress-mesh.io/harness=<run id>`` and removed by ``down()``.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mesh.api.proxyconfig import CONFIG_PORT
from mesh.manifests.install import CONTROLLER_NAME
from scenarios.clusters.base import (
    BackendOptions,
    Cluster,
    MeshOptions,
    OpResult,
    PodInfo,
    Unsupported,
    join,
)
from scenarios.clusters.docker.engine import (
    ContainerSpec,
    Engine,
    PodStartError,
    connect,
    remove_run,
    wait_until,
)
from scenarios.clusters.docker.hooks import DockerHook, hook_classes
from scenarios.clusters.docker.naming import APPLY_ORDER, HARNESS_LABEL, plural, service_aliases, short_name
from scenarios.clusters.docker.pods import PodRuntime
from scenarios.clusters.docker.store import ObjectStore, admit, key_of, object_key, parse_manifest
from scenarios.clusters.kubectl import KubectlEmulator

#: stand-in -> the external names it answers as: one container, so one address, per external service
STANDINS = {
    "httpbin.org": ("httpbin.org", "www.httpbin.org"),
    "httpstat.us": ("httpstat.us", "www.httpstat.us"),
}


class DockerCluster(Cluster):
    name = "docker"
    capabilities = frozenset({"gateway-log", "pod-ip", "iptables", "standins", "docker"})

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self.run_id = secrets.token_hex(4)
        self.prefix = f"em-{self.run_id}"
        self.engine: Engine | None = None
        self.store = ObjectStore()
        self.runtime = PodRuntime(self)
        self.images: dict[str, str] = {}
        self.mesh_options: MeshOptions | None = None
        self.installed_meshconfig: dict[str, Any] | None = None
        self.mesh_network = f"{self.prefix}-mesh"
        self.external_network = f"{self.prefix}-external"
        #: external name (``httpbin.org``) -> its stand-in's container
        self.standins: dict[str, str] = {}
        self.controller: str | None = None
        self._lock = threading.RLock()
        self.hooks: list[DockerHook] = [cls(self) for cls in hook_classes()]
        for hook in self.hooks:
            self.capabilities = self.capabilities | hook.capabilities()

    @property
    def client(self):
        return self.engine.client if self.engine else None

    @property
    def manifest_dir(self) -> Path | None:
        return self.store.directory

    # lifecycle -------------------------------------------------------------------------------------------
    def up(self) -> None:
        if self.engine is not None:
            return
        engine = Engine(connect(), self.run_id)
        engine.create_networks(self.mesh_network, self.external_network)
        self.engine = engine
        self.store.directory = Path(tempfile.mkdtemp(prefix=f"egress-mesh-{self.run_id}-manifests-"))
        os.chmod(self.store.directory, 0o755)

    def down(self, keep: bool = False) -> None:
        if self.engine is None:
            return
        if keep or self.options.keep:
            print(
                f"docker backend: keeping containers and networks labelled {HARNESS_LABEL}={self.run_id} "
                f"and manifests in {self.manifest_dir}; remove them with "
                f"`python -m scenarios.clusters.docker clean {self.run_id}`",
                file=sys.stderr,
            )
            return
        remove_run(self.engine.client, self.run_id)
        if self.manifest_dir:
            shutil.rmtree(self.manifest_dir, ignore_errors=True)
        self.engine = None
        self.runtime.pods.clear()
        self.store.clear()

    def load_images(self, images: Sequence[str]) -> list[OpResult]:
        self._require_up()
        results = []
        for ref in images:
            try:
                self.engine.client.images.get(ref)
                self.images[short_name(ref)] = ref
                results.append(OpResult(join(["docker", "image", "inspect", ref])))
            except Exception as exc:
                results.append(OpResult(join(["docker", "image", "inspect", ref]), 1, stderr=str(exc)))
        if all(r.ok for r in results) and "standin" in self.images and self.options.external != "internet":
            results += self._start_standins()
        return results

    def image(self, image: str) -> str:
        """``egress-mesh/<name>[:any]`` -> the built ref (built now if need be); other images as they are."""
        from scenarios import images

        name = short_name(image)
        if not image.startswith("egress-mesh/") or name not in images.NAMES:
            return image
        if name not in self.images:
            self.images.update(images.build_all(base_image=self.options.base_image, names=[name]))
        return self.images[name]

    def _ensure_images(self) -> None:
        from scenarios import images

        missing = set(images.NAMES) - set(self.images)
        if missing:
            self.images.update(images.build_all(base_image=self.options.base_image, names=sorted(missing)))

    def _start_standins(self) -> list[OpResult]:
        results = []
        for name, aliases in STANDINS.items():
            if name in self.standins:
                continue
            spec = ContainerSpec(
                name=f"{self.prefix}-standin-{name.split('.')[0]}",
                image=self.images["standin"],
                command=["python3", "/opt/standin/standin.py", "--name", name],
                network=self.external_network,
                aliases=list(aliases),
                labels=self.engine.labels(role="standin"),
            )
            try:
                container = self.engine.start(spec)
            except PodStartError as exc:
                return [*results, OpResult(spec.cli(), 1, stderr=f"the stand-ins did not start: {exc}")]
            self.standins[name] = container.name
            results.append(OpResult(spec.cli()))
        for name, container in self.standins.items():
            try:
                listening = lambda c=container: '"event": "listening"' in self.engine.logs(c)[0]  # noqa: E731
                wait_until(listening, 30, f"the stand-in {name}")
            except TimeoutError as exc:
                out, err = self.engine.logs(container)
                return [*results, OpResult(f"docker logs {container}", 1, out, f"{exc}\n{err}")]
        return results

    def install_mesh(self, options: MeshOptions) -> list[OpResult]:
        self._require_up()
        self._ensure_images()
        results = []
        if self.options.external != "internet":
            results += self._start_standins()
        self.mesh_options = options
        from mesh.manifests.install import (
            InstallOptions,
            OptionError,
            apply_sets,
            default_meshconfig,
            namespace,
        )

        install = InstallOptions(
            mesh_name=options.mesh_name, namespace=options.mesh_namespace, enable_egress=options.enable_egress
        )
        try:
            install, _ = apply_sets(install, [f"{k}={v}" for k, v in options.extra_set.items()])
        except OptionError as exc:
            return [OpResult("meshctl install", 1, stderr=str(exc))]
        meshconfig = default_meshconfig(options.mesh_namespace, options.enable_egress, install)
        self.installed_meshconfig = copy.deepcopy(meshconfig)
        results.append(self.apply(yaml.safe_dump_all([namespace(install), meshconfig])))
        if self.controller is None:
            started = self._start_controller(options)
            results.append(started)
            if not started.ok:
                return results
        probe = ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{CONFIG_PORT}/readyz"]
        command = join(["docker", "exec", self.controller, *probe])
        try:
            wait_until(lambda: self.engine.probe(self.controller, probe), 60, "the controller ready")
        except TimeoutError as exc:
            out, err = self.engine.logs(self.controller)
            return [*results, OpResult(command, 1, out, f"{exc}\n{err}")]
        results.append(OpResult(command))
        return results

    def _start_controller(self, options: MeshOptions) -> OpResult:
        spec = ContainerSpec(
            name=f"{self.prefix}-{CONTROLLER_NAME}",
            image=self.images["controller"],
            command=[
                "mesh-controller",
                "run",
                "--source",
                "directory",
                "--manifests",
                "/manifests",
                "--mesh-name",
                options.mesh_name,
                "--mesh-namespace",
                options.mesh_namespace,
                "--proxy-image",
                self.images["proxy"],
            ],
            network=self.mesh_network,
            aliases=service_aliases(CONTROLLER_NAME, options.mesh_namespace),
            binds=[f"{self.manifest_dir}:/manifests:ro"],
            labels=self.engine.labels(role="controller"),
        )
        for hook in self.hooks:
            hook.controller_spec(spec)
        try:
            self.controller = self.engine.start(spec).name
        except PodStartError as exc:
            return OpResult(spec.cli(), 1, stderr=f"the controller did not start: {exc}")
        return OpResult(spec.cli())

    def reset(self) -> None:
        self._require_up()
        mesh_ns = self.mesh_options.mesh_namespace if self.mesh_options else "osm-system"
        with self._lock:
            self.runtime.remove([p for p in self.runtime.pods.values() if p.namespace != mesh_ns])
            for key in self.store.keys():
                kind, ns, name = key
                sample = (kind == "Namespace" and name != mesh_ns) or (ns and ns != mesh_ns)
                if sample or kind in ("Egress", "EgressGateway"):
                    self.store.forget(key)
            if self.installed_meshconfig is not None:
                self.store.store(copy.deepcopy(self.installed_meshconfig))
            for hook in self.hooks:
                hook.objects_changed()

    # resources -------------------------------------------------------------------------------------------
    def apply(self, manifest: str, namespace: str | None = None) -> OpResult:
        self._require_up()
        try:
            objects = parse_manifest(manifest)
        except ValueError as exc:
            return OpResult("kubectl apply -f -", 1, stderr=str(exc))
        problems = []
        created = {o["metadata"].get("name") for o in objects if o.get("kind") == "Namespace"}
        for obj in objects:
            problem = admit(obj, namespace)
            if problem:
                problems.append(problem)
                continue
            ns = obj["metadata"].get("namespace")
            if ns and ns != "default" and ns not in created and ("Namespace", "", ns) not in self.store:
                problems.append(f'Error from server (NotFound): namespaces "{ns}" not found')
        if problems:
            return OpResult(f"# validate {len(objects)} object(s)", 1, stderr="\n".join(problems))
        actions: list[str] = []
        output: list[str] = []
        with self._lock:
            for obj in sorted(objects, key=lambda o: APPLY_ORDER.get(o.get("kind"), 3)):
                previous = self.store.get(key_of(obj))
                if previous == obj:
                    verb = "unchanged"
                else:
                    actions += self.store.store(obj)
                    verb = "configured" if previous is not None else "created"
                output.append(f"{obj['kind'].lower()}/{obj['metadata']['name']} {verb}")
                actions += self.runtime.reconcile(obj)
            return self._after_change(OpResult("\n".join(actions), 0, "\n".join(output)))

    def delete(self, kind: str, name: str, namespace: str | None = None) -> OpResult:
        self._require_up()
        key = object_key(kind, name, namespace)
        kind, ns, _ = key
        pods = self.runtime.pods
        with self._lock:
            if key not in self.store and not (kind == "Pod" and (ns, name) in pods):
                return OpResult(
                    f"rm {self.store.path(key)}",
                    1,
                    stderr=f'Error from server (NotFound): {plural(kind)} "{name}" not found',
                )
            actions = []
            if kind == "Namespace":
                actions += self.runtime.remove([p for p in pods.values() if p.namespace == name])
                for other in [k for k in self.store.keys() if k[1] == name]:
                    actions += self.store.forget(other)
            elif kind == "Deployment":
                actions += self.runtime.remove(
                    [p for p in pods.values() if (p.namespace, p.owner) == (ns, name)]
                )
            elif kind == "Pod":
                actions += self.runtime.remove([pods[(ns, name)]] if (ns, name) in pods else [])
            if key in self.store:
                actions += self.store.forget(key)
            return self._after_change(OpResult("\n".join(actions), 0, f'{kind.lower()} "{name}" deleted'))

    def patch(
        self, kind: str, name: str, namespace: str | None, patch: dict, patch_type: str = "merge"
    ) -> OpResult:
        self._require_up()
        key = object_key(kind, name, namespace)
        kind, ns, _ = key
        with self._lock:
            current = self.store.get(key)
            if current is None:
                return OpResult(
                    f"# patch {self.store.path(key)}",
                    1,
                    stderr=f'Error from server (NotFound): {plural(kind)} "{name}" not found',
                )
            if patch_type in ("merge", "strategic"):
                from mesh.api.load import merge_patch

                updated = merge_patch(current, patch)
            elif patch_type == "json":
                try:
                    import jsonpatch
                except ImportError:
                    raise Unsupported("--type=json needs the jsonpatch package") from None
                updated = jsonpatch.apply_patch(current, patch)
            else:
                return OpResult("kubectl patch", 1, stderr=f"error: unknown patch type {patch_type!r}")
            problem = admit(updated, ns or None)
            if problem:
                return OpResult(f"# validate {kind} {name}", 1, stderr=problem)
            actions = self.store.store(updated)
            actions += self.runtime.reconcile(updated)
            return self._after_change(OpResult("\n".join(actions), 0, f"{kind.lower()}/{name} patched"))

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        found = self.store.get(object_key(kind, name, namespace))
        return copy.deepcopy(found) if found is not None else None

    def run(self, argv: Sequence[str]) -> OpResult:
        self._require_up()
        mesh_name = self.mesh_options.mesh_name if self.mesh_options else "osm"
        return KubectlEmulator(self, mesh_name).run(argv)

    def _after_change(self, result: OpResult) -> OpResult:
        """``result`` after every hook followed the change (their commands appended), or a failure
        saying why a hook could not."""
        actions: list[str] = []
        for hook in self.hooks:
            try:
                actions += hook.objects_changed()
            except RuntimeError as exc:  # docker_firewall.FirewallError, PodStartError
                return OpResult(result.command, 1, result.stdout, f"error: {hook.what}: {exc}")
        command = "\n".join(line for line in (result.command, *actions) if line)
        return OpResult(command, result.exit_code, result.stdout, result.stderr)

    # pods ------------------------------------------------------------------------------------------------
    def exec(self, namespace: str, selector: str, container: str, argv: Sequence[str]) -> OpResult:
        self._require_up()
        pod = self.runtime.pick(namespace, selector)
        if pod is None:
            return OpResult(
                f"docker exec <no pod> {join(argv)}", 1, stderr=f"no pod in {namespace} matches {selector}"
            )
        return self.runtime.exec(pod, container, argv)

    def exec_pod(self, namespace: str, pod: str, container: str | None, argv: Sequence[str]) -> OpResult:
        self._require_up()
        found = self.runtime.pods.get((namespace, pod))
        if found is None:
            return OpResult(join(argv), 1, stderr=f'Error from server (NotFound): pods "{pod}" not found')
        return self.runtime.exec(found, container or found.app_containers[0], argv)

    def logs(self, namespace: str, selector: str, container: str | None = None) -> OpResult:
        self._require_up()
        pod = self.runtime.pick(namespace, selector)
        if pod is None:
            return OpResult("docker logs <no pod>", 1, stderr=f"no pod in {namespace} matches {selector}")
        return self.runtime.logs(pod, container)

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> OpResult:
        self._require_up()
        found = self.runtime.pods.get((namespace, pod))
        if found is None:
            return OpResult("docker logs <no pod>", 1, stderr="error: pod not found")
        return self.runtime.logs(found, container)

    def list_pods(self, namespace: str, selector: str = "") -> list[PodInfo]:
        return [
            PodInfo(p.namespace, p.name, p.ip, "Error" if p.failed else "Running", len(p.containers))
            for p in self.runtime.select(namespace, selector)
        ]

    def pod_ip(self, namespace: str, selector: str) -> str:
        pod = self.runtime.pick(namespace, selector)
        if pod is None:
            raise LookupError(f"no pod in {namespace} matches {selector}")
        return pod.ip

    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        self._require_up()
        command = f"# wait until pods -n {namespace} -l {selector} run and their sidecars have their config"
        problem: list[str] = ["no pod matches yet"]

        def ready() -> bool:
            pods = self.runtime.select(namespace, selector)
            if not pods:
                problem[:] = [f"no pod in namespace {namespace} matches {selector}"]
                return False
            for pod in pods:
                why = self.runtime.not_ready(pod)
                if why:
                    problem[:] = [f"pod {namespace}/{pod.name}: {why}"]
                    if pod.failed:
                        raise TimeoutError(problem[0])
                    return False
            return True

        wait_until(ready, timeout, f"pods {namespace}/{selector} ready", lambda: problem[0])
        return OpResult(command)

    def _require_up(self) -> None:
        if self.engine is None:
            self.up()
