"""The Docker backend: Kubernetes-shaped pods as groups of containers, no cluster needed.

- State is a set of Kubernetes objects kept in a manifest directory (a host temp dir) that the
  controller container reads (``mesh-controller run --source directory --manifests /manifests``).
  ``apply``/``delete``/``patch`` edit that directory; mesh objects are validated first.
- A pod is a sandbox container owning a network namespace, then (in a namespace labelled
  ``openservicemesh.io/monitored-by`` and not opted out) the pod spec goes through the same
  injector as the webhook: the init container runs to completion (NET_ADMIN) and the sidecar
  (UID 1500) and app containers join the sandbox's network namespace.
- Network ``mesh``: pod IPs; Services are network aliases of their pods' sandboxes
  (``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``). Network ``external``: the
  stand-ins, aliased ``httpbin.org`` and ``httpstat.us``; pods join it too, as a node routes out.
- Everything is labelled ``egress-mesh.io/harness=<run id>`` and removed by ``down()``.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from scenarios.clusters.base import (
    BackendOptions,
    BackendUnavailable,
    Cluster,
    MeshOptions,
    OpResult,
    Unsupported,
    join,
)

HARNESS_LABEL = "egress-mesh.io/harness"
ROLE_LABEL = "egress-mesh.io/role"
POD_LABEL = "egress-mesh.io/pod"
CONTAINER_LABEL = "egress-mesh.io/container"
CLUSTER_DOMAIN = "cluster.local"
MONITORED_BY = "openservicemesh.io/monitored-by"
INJECTION = "openservicemesh.io/sidecar-injection"
MESHCONFIG_NAME = "osm-mesh-config"
CONTROLLER_NAME = "osm-controller"
CONFIG_PORT = 15128
STANDIN_NAMES = ("httpbin.org", "www.httpbin.org", "httpstat.us", "www.httpstat.us")
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
#: the article's remote manifests, answered with our local copies (no internet needed)
ARTICLE_URLS = {
    "samples/curl/curl.yaml": MANIFESTS / "curl.yaml",
    "egress/egress-gateway.yaml": MANIFESTS / "egress-gateway.yaml",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}
#: apply order inside one manifest: what pods need exists before them
APPLY_ORDER = {"Namespace": 0, "ServiceAccount": 1, "ConfigMap": 1, "Secret": 1, "Service": 2}
KINDS = {
    "namespace": "Namespace",
    "ns": "Namespace",
    "serviceaccount": "ServiceAccount",
    "sa": "ServiceAccount",
    "service": "Service",
    "svc": "Service",
    "deployment": "Deployment",
    "deploy": "Deployment",
    "pod": "Pod",
    "po": "Pod",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "secret": "Secret",
    "meshconfig": "MeshConfig",
    "egress": "Egress",
    "egressgateway": "EgressGateway",
    "httproutegroup": "HTTPRouteGroup",
}
WORKLOAD_KINDS = ("Deployment", "Pod")
READY_EVENT = '"event": "config"'
POLL = 0.1
#: seconds one Docker API call may take (a long `docker exec` included)
DOCKER_TIMEOUT = 600


def kind_of(name: str) -> str:
    """``meshconfig``, ``egresses.policy.openservicemesh.io``, ``Deployment`` -> the object kind."""
    word = name.split(".", 1)[0].lower()
    if word in KINDS:
        return KINDS[word]
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in KINDS:
            return KINDS[word[: -len(suffix)]]
    raise Unsupported(f"the docker backend does not know the resource type {name!r}")


def parse_selector(selector: str) -> list[tuple[str, str, str | None]]:
    """``app=curl,tier!=db,env`` -> [(key, op, value)] with op one of ``=``, ``!=``, ``exists``, ``!``."""
    terms: list[tuple[str, str, str | None]] = []
    for part in (p.strip() for p in (selector or "").split(",")):
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            terms.append((k.strip(), "!=", v.strip()))
        elif "=" in part:
            k, v = part.split("==", 1) if "==" in part else part.split("=", 1)
            terms.append((k.strip(), "=", v.strip()))
        elif part.startswith("!"):
            terms.append((part[1:].strip(), "!", None))
        else:
            terms.append((part, "exists", None))
    return terms


def selector_matches(selector: str | Mapping[str, str], labels: Mapping[str, str]) -> bool:
    if isinstance(selector, Mapping):
        return all(labels.get(k) == v for k, v in selector.items())
    for key, op, value in parse_selector(selector):
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


def service_aliases(name: str, namespace: str) -> list[str]:
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}",
    ]


def manifest_filename(kind: str, namespace: str, name: str) -> str:
    return f"{kind.lower()}.{namespace or '_'}.{name}.yaml"


def short_name(image: str) -> str:
    """``egress-mesh/curl:abc`` -> ``curl``."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]


def template_hash(template: Any) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def resolve_env(env: Iterable[Mapping[str, Any]], fields: Mapping[str, str]) -> list[str]:
    """``KEY=VALUE`` from a container's ``env`` (values and downward-API ``fieldRef``s)."""
    out = []
    for item in env or ():
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            out.append(f"{name}={item['value']}")
            continue
        ref = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref:
            out.append(f"{name}={fields.get(ref, '')}")
    return out


def parse_kubectl_file(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """(-f FILE, -n NS) of a kubectl argument list."""
    filename = namespace = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in ("-f", "--filename"):
            filename, i = nxt, i + 2
            continue
        if arg in ("-n", "--namespace"):
            namespace, i = nxt, i + 2
            continue
        if arg.startswith("--filename="):
            filename = arg.split("=", 1)[1]
        elif arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
        i += 1
    return filename, namespace


@dataclass
class ContainerSpec:
    """One ``docker run``, kept as data so it can be shown as the CLI line."""

    name: str
    image: str
    command: list[str] | None = None  # Docker CMD (Kubernetes args)
    entrypoint: list[str] | None = None  # Docker ENTRYPOINT (Kubernetes command)
    env: list[str] = field(default_factory=list)
    user: str | None = None
    network: str | None = None  # a network name, or "container:<id>"
    aliases: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    workdir: str | None = None

    def cli(self) -> str:
        argv = ["docker", "run", "-d", "--name", self.name]
        if self.network:
            argv += ["--network", self.network]
        for alias in self.aliases:
            argv += ["--network-alias", alias]
        if self.hostname:
            argv += ["--hostname", self.hostname]
        if self.user:
            argv += ["--user", self.user]
        for cap in self.cap_add:
            argv += ["--cap-add", cap]
        for bind in self.binds:
            argv += ["-v", bind]
        for env in self.env:
            argv += ["-e", env]
        if self.workdir:
            argv += ["-w", self.workdir]
        if self.entrypoint:
            argv += ["--entrypoint", self.entrypoint[0]]
        argv.append(self.image)
        argv += (self.entrypoint or [])[1:] + (self.command or [])
        return join(argv)


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


class DockerCluster(Cluster):
    name = "docker"
    capabilities = frozenset({"gateway-log", "pod-ip", "iptables", "standins", "docker"})

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self.run_id = secrets.token_hex(4)
        self.prefix = f"em-{self.run_id}"
        self.client = None
        self.manifest_dir: Path | None = None
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.images: dict[str, str] = {}
        self.mesh_options: MeshOptions | None = None
        self.installed_meshconfig: dict[str, Any] | None = None
        self.mesh_network = f"{self.prefix}-mesh"
        self.external_network = f"{self.prefix}-external"
        self.standin: str | None = None
        self.controller: str | None = None
        self._lock = threading.RLock()
        from scenarios.clusters import docker_firewall

        self.firewall = docker_firewall.HostFirewall(self.run_id)
        if docker_firewall.available():
            self.capabilities = type(self).capabilities | {"network-policy"}

    # lifecycle -------------------------------------------------------------------------------------------
    def up(self) -> None:
        if self.client is not None:
            return
        try:
            import docker

            client = docker.from_env(timeout=DOCKER_TIMEOUT)
            client.ping()
        except Exception as exc:  # the SDK raises many unrelated types when no engine answers
            raise BackendUnavailable(f"no Docker engine answers ({exc}); start dockerd first") from None
        labels = self._labels(role="network")
        try:
            for network in (self.mesh_network, self.external_network):
                client.networks.create(network, driver="bridge", labels=labels, check_duplicate=True)
        except docker.errors.APIError as exc:
            remove_run(client, self.run_id)
            raise BackendUnavailable(
                f"docker cannot create the harness networks ({exc.explanation or exc}); if it has no free "
                "address pool left, remove what old runs left (python -m scenarios.clusters.docker clean) "
                "or unused networks (docker network prune)"
            ) from None
        self.client = client
        self.manifest_dir = Path(tempfile.mkdtemp(prefix=f"egress-mesh-{self.run_id}-manifests-"))
        os.chmod(self.manifest_dir, 0o755)

    def down(self, keep: bool = False) -> None:
        if self.client is None:
            return
        if keep or self.options.keep:
            print(
                f"docker backend: keeping containers and networks labelled {HARNESS_LABEL}={self.run_id} "
                f"and manifests in {self.manifest_dir}; remove them with "
                f"`python -m scenarios.clusters.docker clean {self.run_id}`",
                file=sys.stderr,
            )
            return
        remove_run(self.client, self.run_id)
        if self.manifest_dir:
            shutil.rmtree(self.manifest_dir, ignore_errors=True)
        self.client = None
        self.pods.clear()
        self.objects.clear()

    def load_images(self, images: Sequence[str]) -> list[OpResult]:
        self._require_up()
        results = []
        for ref in images:
            try:
                self.client.images.get(ref)
                self.images[short_name(ref)] = ref
                results.append(OpResult(join(["docker", "image", "inspect", ref])))
            except Exception as exc:
                results.append(OpResult(join(["docker", "image", "inspect", ref]), 1, stderr=str(exc)))
        if all(r.ok for r in results) and "standin" in self.images and self.options.external != "internet":
            results.append(self._start_standins())
        return results

    def _ensure_images(self, *names: str) -> None:
        """Build (or find) the images not given to ``load_images``: all of them when ``names`` is empty."""
        from scenarios import images

        missing = set(names or images.NAMES) - set(self.images)
        if missing:
            self.images.update(images.build_all(base_image=self.options.base_image, names=sorted(missing)))

    def _start_standins(self) -> OpResult:
        if self.standin:
            return OpResult(f"# stand-ins already running in {self.standin}")
        spec = ContainerSpec(
            name=f"{self.prefix}-standin",
            image=self.images["standin"],
            network=self.external_network,
            aliases=list(STANDIN_NAMES),
            labels=self._labels(role="standin"),
        )
        try:
            container = self._start(spec)
        except PodStartError as exc:
            return OpResult(spec.cli(), 1, stderr=f"the stand-ins did not start: {exc}")
        self.standin = container.name
        try:
            self._wait(lambda: '"event": "listening"' in self._logs(container.name)[0], 30, "the stand-ins")
        except TimeoutError as exc:
            out, err = self._logs(container.name)
            return OpResult(spec.cli(), 1, out, f"{exc}\n{err}")
        return OpResult(spec.cli())

    def install_mesh(self, options: MeshOptions) -> list[OpResult]:
        self._require_up()
        self._ensure_images()
        results = []
        if not self.standin and self.options.external != "internet":
            results.append(self._start_standins())
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
            ns = options.mesh_namespace
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
                    ns,
                    "--proxy-image",
                    self.images["proxy"],
                ],
                network=self.mesh_network,
                aliases=service_aliases(CONTROLLER_NAME, ns),
                binds=[f"{self.manifest_dir}:/manifests:ro"],
                labels=self._labels(role="controller"),
            )
            try:
                container = self._start(spec)
            except PodStartError as exc:
                return [*results, OpResult(spec.cli(), 1, stderr=f"the controller did not start: {exc}")]
            self.controller = container.name
            results.append(OpResult(spec.cli()))
        probe = ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{CONFIG_PORT}/readyz"]
        try:
            self._wait(lambda: self._probe(self.controller, probe), 60, "the controller ready")
        except TimeoutError as exc:
            out, err = self._logs(self.controller)
            return [
                *results,
                OpResult(join(["docker", "exec", self.controller, *probe]), 1, out, f"{exc}\n{err}"),
            ]
        results.append(OpResult(join(["docker", "exec", self.controller, *probe])))
        return results

    def reset(self) -> None:
        self._require_up()
        mesh_ns = self.mesh_options.mesh_namespace if self.mesh_options else "osm-system"
        with self._lock:
            doomed = [p for p in self.pods.values() if p.namespace != mesh_ns]
            self._remove_pods(doomed)
            for key in list(self.objects):
                kind, ns, name = key
                sample = (kind == "Namespace" and name != mesh_ns) or (ns and ns != mesh_ns)
                if sample or kind in ("Egress", "EgressGateway"):
                    self._forget(key)
            if self.installed_meshconfig is not None:
                self._store(copy.deepcopy(self.installed_meshconfig))
            self._enforce_boundary()

    # resources -------------------------------------------------------------------------------------------
    def apply(self, manifest: str, namespace: str | None = None) -> OpResult:
        self._require_up()
        try:
            docs = [d for d in yaml.safe_load_all(manifest) if d is not None]
        except yaml.YAMLError as exc:
            return OpResult("kubectl apply -f -", 1, stderr=f"error: the manifest is not valid YAML: {exc}")
        objects: list[dict[str, Any]] = []
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "List":
                objects += [d for d in doc.get("items") or () if isinstance(d, dict)]
            else:
                objects.append(doc)
        problems = []
        created = {
            o["metadata"].get("name") for o in objects if isinstance(o, dict) and o.get("kind") == "Namespace"
        }
        for obj in objects:
            problem = self._admit(obj, namespace)
            if problem:
                problems.append(problem)
                continue
            ns = obj["metadata"].get("namespace")
            if ns and ns != "default" and ns not in created and ("Namespace", "", ns) not in self.objects:
                problems.append(f'Error from server (NotFound): namespaces "{ns}" not found')
        if problems:
            return OpResult(f"# validate {len(objects)} object(s)", 1, stderr="\n".join(problems))
        actions: list[str] = []
        output: list[str] = []
        with self._lock:
            for obj in sorted(objects, key=lambda o: APPLY_ORDER.get(o.get("kind"), 3)):
                previous = self.objects.get(self._key(obj))
                meta = obj["metadata"]
                if previous == obj:
                    verb = "unchanged"
                else:
                    actions += self._store(obj)
                    verb = "configured" if previous is not None else "created"
                output.append(f"{obj['kind'].lower()}/{meta['name']} {verb}")
                actions += self._reconcile(obj)
            return self._with_boundary(OpResult("\n".join(actions), 0, "\n".join(output)))

    def delete(self, kind: str, name: str, namespace: str | None = None) -> OpResult:
        self._require_up()
        kind = kind_of(kind)
        ns = "" if kind in CLUSTER_SCOPED else (namespace or "default")
        key = (kind, ns, name)
        with self._lock:
            if key not in self.objects and not (kind == "Pod" and (ns, name) in self.pods):
                plural = kind.lower() + ("es" if kind.endswith("s") else "s")
                return OpResult(
                    f"rm {self._path(key)}",
                    1,
                    stderr=f'Error from server (NotFound): {plural} "{name}" not found',
                )
            actions = []
            if kind == "Namespace":
                pods = [p for p in self.pods.values() if p.namespace == name]
                actions += self._remove_pods(pods)
                for other in [k for k in self.objects if k[1] == name]:
                    actions += self._forget(other)
            elif kind == "Deployment":
                actions += self._remove_pods(
                    [p for p in self.pods.values() if (p.namespace, p.owner) == (ns, name)]
                )
            elif kind == "Pod":
                actions += self._remove_pods([self.pods[(ns, name)]] if (ns, name) in self.pods else [])
            if key in self.objects:
                actions += self._forget(key)
            return self._with_boundary(OpResult("\n".join(actions), 0, f'{kind.lower()} "{name}" deleted'))

    def patch(
        self, kind: str, name: str, namespace: str | None, patch: dict, patch_type: str = "merge"
    ) -> OpResult:
        self._require_up()
        kind = kind_of(kind)
        ns = "" if kind in CLUSTER_SCOPED else (namespace or "default")
        with self._lock:
            current = self.objects.get((kind, ns, name))
            if current is None:
                plural = kind.lower() + ("es" if kind.endswith("s") else "s")
                return OpResult(
                    f"# patch {self._path((kind, ns, name))}",
                    1,
                    stderr=f'Error from server (NotFound): {plural} "{name}" not found',
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
            problem = self._admit(updated, ns or None)
            if problem:
                return OpResult(f"# validate {kind} {name}", 1, stderr=problem)
            actions = self._store(updated)
            actions += self._reconcile(updated)
            return self._with_boundary(OpResult("\n".join(actions), 0, f"{kind.lower()}/{name} patched"))

    def run(self, argv: Sequence[str]) -> OpResult:
        self._require_up()
        argv = list(argv)
        if len(argv) >= 3 and argv[0] in ("osm", "meshctl") and argv[1] == "namespace":
            return self._namespace_command(argv)
        if not argv or argv[0] != "kubectl" or len(argv) < 2:
            raise Unsupported(f"the docker backend does not interpret {join(argv)!r}")
        verb, rest = argv[1], argv[2:]
        if verb == "create" and rest[:1] and rest[0] in ("namespace", "ns") and len(rest) >= 2:
            if ("Namespace", "", rest[1]) in self.objects:
                return OpResult(
                    join(argv),
                    1,
                    stderr=f'Error from server (AlreadyExists): namespaces "{rest[1]}" already exists',
                )
            manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": rest[1]}}
            return self.apply(yaml.safe_dump(manifest))
        if verb in ("apply", "create"):
            filename, namespace = parse_kubectl_file(rest)
            if not filename:
                raise Unsupported(f"the docker backend needs -f FILE in {join(argv)!r}")
            return self.apply(self._read_manifest(filename), namespace)
        if verb == "delete":
            names, namespace = self._positional(rest)
            if len(names) < 2:
                raise Unsupported(f"the docker backend needs `kubectl delete KIND NAME`, got {join(argv)!r}")
            return self.delete(names[0], names[1], namespace)
        if verb == "patch":
            return self._patch_command(argv)
        if verb in ("annotate", "label"):
            return self._metadata_command(argv)
        if verb == "get":
            return self._get_command(argv)
        if verb == "exec":
            return self._exec_command(argv)
        if verb == "logs":
            names, namespace = self._positional(rest, {"-c", "--container"})
            container = self._flag(rest, ("-c", "--container"))
            pod = self.pods.get((namespace or "default", names[0])) if names else None
            if pod is None:
                return OpResult(join(argv), 1, stderr="error: pod not found")
            return self._pod_logs(pod, container)
        raise Unsupported(f"the docker backend does not interpret {join(argv)!r}")

    # pods ------------------------------------------------------------------------------------------------
    def exec(self, namespace: str, selector: str, container: str, argv: Sequence[str]) -> OpResult:
        self._require_up()
        pod = self._pick(namespace, selector)
        if pod is None:
            return OpResult(
                f"docker exec <no pod> {join(argv)}", 1, stderr=f"no pod in {namespace} matches {selector}"
            )
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
            code, out, err = self._exec(target, list(argv))
        except docker.errors.APIError as exc:
            return OpResult(command, 1, stderr=f"docker exec failed: {exc.explanation or exc}")
        if code != 0 and not err:
            err = f"command terminated with exit code {code}"
        return OpResult(command, code, out, err)

    def logs(self, namespace: str, selector: str, container: str | None = None) -> OpResult:
        self._require_up()
        pod = self._pick(namespace, selector)
        if pod is None:
            return OpResult("docker logs <no pod>", 1, stderr=f"no pod in {namespace} matches {selector}")
        return self._pod_logs(pod, container)

    def pod_ip(self, namespace: str, selector: str) -> str:
        pod = self._pick(namespace, selector)
        if pod is None:
            raise LookupError(f"no pod in {namespace} matches {selector}")
        return pod.ip

    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        self._require_up()
        command = f"# wait until pods -n {namespace} -l {selector} run and their sidecars have their config"
        problem: list[str] = ["no pod matches yet"]

        def ready() -> bool:
            pods = self._select(namespace, selector)
            if not pods:
                problem[:] = [f"no pod in namespace {namespace} matches {selector}"]
                return False
            for pod in pods:
                why = self._not_ready(pod)
                if why:
                    problem[:] = [f"pod {namespace}/{pod.name}: {why}"]
                    if pod.failed:
                        raise TimeoutError(problem[0])
                    return False
            return True

        self._wait(ready, timeout, f"pods {namespace}/{selector} ready", lambda: problem[0])
        return OpResult(command)

    # helpers: objects --------------------------------------------------------------------------------------
    def _admit(self, obj: Any, namespace: str | None) -> str | None:
        """Default the namespace and validate; return the problem text or None."""
        if not isinstance(obj, dict) or not obj.get("kind") or not isinstance(obj.get("metadata"), dict):
            return f"error: not a Kubernetes object: {str(obj)[:80]}"
        meta = obj["metadata"]
        if not isinstance(meta.get("name"), str) or not meta["name"]:
            return f"error: {obj['kind']}: metadata.name is required"
        if obj["kind"] in CLUSTER_SCOPED:
            meta.pop("namespace", None)
        else:
            given = meta.get("namespace")
            if namespace and given and given != namespace:
                return (
                    f"error: the namespace from the provided object {given!r} does not match the namespace "
                    f"{namespace!r}. You must pass '--namespace={given}' to perform this operation."
                )
            meta["namespace"] = given or namespace or "default"
        try:
            from mesh.api.validation import validate_object
        except ImportError:
            return None
        problems = validate_object(obj)
        return "\n".join(f"error: {p}" for p in problems) if problems else None

    def _key(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        meta = obj.get("metadata") or {}
        return (obj["kind"], meta.get("namespace") or "", meta["name"])

    def _path(self, key: tuple[str, str, str]) -> Path:
        return Path(self.manifest_dir or ".", manifest_filename(*key))

    def _store(self, obj: dict[str, Any]) -> list[str]:
        key = self._key(obj)
        self.objects[key] = copy.deepcopy(obj)
        path = self._path(key)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(obj, sort_keys=False))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return [f"# write {path}"]

    def _forget(self, key: tuple[str, str, str]) -> list[str]:
        self.objects.pop(key, None)
        path = self._path(key)
        path.unlink(missing_ok=True)
        return [f"rm {path}"]

    def _with_boundary(self, result: OpResult) -> OpResult:
        """``result`` after the egress boundary followed the change (its commands appended), or a
        failure saying why the boundary cannot be enforced."""
        try:
            actions = self._enforce_boundary()
        except RuntimeError as exc:  # docker_firewall.FirewallError, PodStartError
            return OpResult(result.command, 1, result.stdout, f"error: egress boundary: {exc}")
        command = "\n".join(line for line in (result.command, *actions) if line)
        return OpResult(command, result.exit_code, result.stdout, result.stderr)

    def _enforce_boundary(self, starting: Pod | None = None) -> list[str]:
        """The boundary's NetworkPolicies as host firewall rules (docs/boundary.md); ``starting``: a
        pod whose sandbox is up and whose processes are not, so a failure fails the pod."""
        from scenarios.clusters import docker_firewall

        mesh = self.mesh_options or MeshOptions()
        try:
            return docker_firewall.enforce(
                self.firewall,
                list(self.objects.values()),
                self._endpoints,
                mesh.mesh_name,
                mesh.mesh_namespace,
            )
        except docker_firewall.FirewallError as exc:
            if starting is not None:
                raise PodStartError(f"the egress boundary cannot be enforced: {exc}") from None
            raise

    def _endpoints(self) -> list[Any]:
        """Every pod (and the controller) with the addresses of all its networks."""
        from mesh.manifests.install import CONTROLLER_NAME as CONTROLLER_APP
        from scenarios.clusters import docker_firewall

        api = self.client.api
        found = [
            docker_firewall.Endpoint(
                pod.namespace,
                pod.name,
                dict(pod.labels),
                docker_firewall.container_addresses(api, pod.sandbox),
                docker_firewall.named_ports(pod.spec),
            )
            for pod in self.pods.values()
            if pod.sandbox
        ]
        if self.controller:
            mesh = self.mesh_options or MeshOptions()
            addresses = docker_firewall.container_addresses(api, self.controller)
            found.append(
                docker_firewall.Endpoint(
                    mesh.mesh_namespace, CONTROLLER_NAME, {"app": CONTROLLER_APP}, addresses
                )
            )
        return found

    def _reconcile(self, obj: dict[str, Any]) -> list[str]:
        kind = obj["kind"]
        meta = obj["metadata"]
        if kind == "Deployment":
            return self._reconcile_deployment(obj)
        if kind == "Pod":
            key = (meta["namespace"], meta["name"])
            if key in self.pods:
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
        actions = []
        stale = [p for p in current if p.template != digest or p.failed]
        actions += self._remove_pods(stale)
        alive = [p for p in current if p not in stale]
        actions += self._remove_pods(alive[replicas:])
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
        for (kind, ns, name), svc in self.objects.items():
            if kind != "Service" or ns != namespace:
                continue
            selector = (svc.get("spec") or {}).get("selector") or {}
            if selector and selector_matches(selector, labels):
                aliases += service_aliases(name, ns)
        return aliases

    def _refresh_aliases(self, namespace: str, selector: Mapping[str, str]) -> list[str]:
        """A Service added after its pods: reconnect their sandboxes with the new aliases."""
        actions = []
        for pod in self.pods.values():
            if pod.namespace != namespace or not selector or not selector_matches(selector, pod.labels):
                continue
            aliases = self._services_for(namespace, pod.labels)
            endpoint = self.client.api.inspect_container(pod.sandbox)["NetworkSettings"]["Networks"]
            current = set((endpoint.get(self.mesh_network) or {}).get("Aliases") or ())
            if set(aliases) <= current:
                continue
            self.client.api.disconnect_container_from_network(pod.sandbox, self.mesh_network)
            self.client.api.connect_container_to_network(pod.sandbox, self.mesh_network, aliases=aliases)
            pod.ip = self._ip(pod.sandbox)
            args = [f"--alias={a}" for a in aliases]
            actions.append(join(["docker", "network", "connect", *args, self.mesh_network, pod.sandbox]))
        return actions

    # helpers: pods ------------------------------------------------------------------------------------------
    def _namespace(self, name: str):
        obj = self.objects.get(("Namespace", "", name))
        if obj is None:
            return None
        from mesh.api.resources import Namespace

        return Namespace.from_object(obj)

    def _inject(self, pod_obj: dict[str, Any]) -> dict[str, Any]:
        if self.mesh_options is None:
            return pod_obj
        namespace = self._namespace(pod_obj["metadata"]["namespace"])
        from mesh.controller.injector import InjectionSettings, inject_pod, is_monitored

        if not is_monitored(namespace, self.mesh_options.mesh_name):
            return pod_obj
        from mesh.api.proxyconfig import Exclusions
        from mesh.api.resources import MeshConfig

        mc_obj = self.objects.get(("MeshConfig", self.mesh_options.mesh_namespace, MESHCONFIG_NAME))
        mc = MeshConfig.from_object(mc_obj) if mc_obj else MeshConfig()
        settings = InjectionSettings(
            proxy_image=self.images["proxy"],
            init_image=self.images["proxy"],
            controller_url=f"http://{CONTROLLER_NAME}.{self.mesh_options.mesh_namespace}.svc.{CLUSTER_DOMAIN}"
            f":{CONFIG_PORT}",
            mesh_name=self.mesh_options.mesh_name,
            exclusions=Exclusions(
                ip_ranges=mc.outbound_ip_range_exclusions,
                ports=mc.outbound_port_exclusions,
                include_ip_ranges=mc.outbound_ip_range_inclusions,
            ),
            image_pull_policy="Never",
        )
        return inject_pod(pod_obj, settings, namespace)

    def _image(self, image: str) -> str:
        """``egress-mesh/<name>[:any]`` -> the built ref; other images are used as they are."""
        from scenarios.images import NAMES

        name = short_name(image)
        if not image.startswith("egress-mesh/") or name not in NAMES:
            return image
        self._ensure_images(name)
        return self.images[name]

    def _container_spec(
        self, pod: Pod, container: dict[str, Any], role: str, fields: dict[str, str]
    ) -> ContainerSpec:
        security = container.get("securityContext") or {}
        pod_security = pod.spec.get("securityContext") or {}
        uid = security.get("runAsUser", pod_security.get("runAsUser"))
        gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
        user = None if uid is None else (f"{uid}:{gid}" if gid is not None else str(uid))
        return ContainerSpec(
            name=f"{self.prefix}-{pod.namespace}-{pod.name}-{container['name']}",
            image=self._image(str(container.get("image", ""))),
            entrypoint=list(container["command"]) if container.get("command") else None,
            command=list(container["args"])
            if container.get("args")
            else ([] if container.get("command") else None),
            env=resolve_env(container.get("env") or (), fields),
            user=user,
            network=f"container:{pod.sandbox}",
            cap_add=list((security.get("capabilities") or {}).get("add") or ()),
            labels=self._labels(role=role, pod=f"{pod.namespace}/{pod.name}", container=container["name"]),
            workdir=container.get("workingDir"),
        )

    def _start_pod(self, pod: Pod, pod_obj: dict[str, Any]) -> list[str]:
        """Start the pod's containers; a failure is kept in ``pod.failed`` (wait_ready reports it)."""
        self._ensure_images("curl")
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
            self._run_pod(pod, actions)
        except PodStartError as exc:
            pod.failed = str(exc)
            actions.append(f"# pod {pod.namespace}/{pod.name} failed: {exc}")
        return actions

    def _run_pod(self, pod: Pod, actions: list[str]) -> None:
        sandbox = ContainerSpec(
            name=f"{self.prefix}-{pod.namespace}-{pod.name}",
            image=self.images["curl"],
            command=["sleep", "infinity"],
            network=self.mesh_network,
            aliases=self._services_for(pod.namespace, pod.labels),
            hostname=pod.name[:63],
            labels=self._labels(role="sandbox", pod=f"{pod.namespace}/{pod.name}"),
        )
        container = self._start(sandbox)
        pod.sandbox = container.name
        actions.append(sandbox.cli())
        if self.options.external != "internet":
            self.client.api.connect_container_to_network(pod.sandbox, self.external_network)
            actions.append(join(["docker", "network", "connect", self.external_network, pod.sandbox]))
        pod.ip = self._ip(pod.sandbox)
        actions += self._enforce_boundary(pod)  # before any of the pod's own processes run
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
                pod.containers[init["name"]] = self._start(spec).name
                actions.append(spec.cli())
                continue
            spec = self._container_spec(pod, init, "init", fields)
            started = self._start(spec)
            pod.init_containers[init["name"]] = started.name
            actions.append(spec.cli().replace("docker run -d", "docker run", 1))
            code = started.wait(timeout=120).get("StatusCode", 1)
            if code != 0:
                out, err = self._logs(started.name)
                raise PodStartError(
                    f"init container {init['name']} exited with code {code}: {(err or out).strip()[-800:]}"
                )
        for app in pod.spec.get("containers") or ():
            spec = self._container_spec(pod, app, "container", fields)
            started = self._start(spec)
            pod.containers[app["name"]] = started.name
            actions.append(spec.cli())

    def _not_ready(self, pod: Pod) -> str | None:
        if pod.failed:
            return pod.failed
        for name, cname in pod.containers.items():
            state = self.client.api.inspect_container(cname)["State"]
            if not state.get("Running"):
                out, err = self._logs(cname)
                tail = (err or out).strip()[-800:]
                pod.failed = f"container {name} exited with code {state.get('ExitCode')}: {tail}"
                return pod.failed
        sidecar = pod.containers.get("sidecar")
        if sidecar and READY_EVENT not in self._logs(sidecar)[0]:
            out, err = self._logs(sidecar)
            last = (out.strip().splitlines() or err.strip().splitlines() or ["(no output)"])[-1]
            return f"the sidecar has not received its config from the controller yet (last log line: {last})"
        return None

    def _select(self, namespace: str, selector: str) -> list[Pod]:
        return sorted(
            (
                p
                for p in self.pods.values()
                if p.namespace == namespace and selector_matches(selector, p.labels)
            ),
            key=lambda p: p.name,
        )

    def _pick(self, namespace: str, selector: str) -> Pod | None:
        pods = self._select(namespace, selector)
        ready = [p for p in pods if not p.failed]
        return (ready or pods or [None])[0]

    def _pod_logs(self, pod: Pod, container: str | None) -> OpResult:
        name = container or (pod.app_containers or [""])[0]
        target = pod.containers.get(name) or pod.init_containers.get(name)
        if target is None:
            return OpResult("docker logs ?", 1, stderr=f"container {name} is not valid for pod {pod.name}")
        import docker

        command = join(["docker", "logs", target])
        try:
            out, err = self._logs(target)
        except docker.errors.APIError as exc:
            return OpResult(command, 1, stderr=f"docker logs failed: {exc.explanation or exc}")
        return OpResult(command, 0, out, err)

    def _remove_pods(self, pods: Sequence[Pod]) -> list[str]:
        names = []
        for pod in pods:
            names += [*pod.containers.values(), *pod.init_containers.values()]
            if pod.sandbox:
                names.append(pod.sandbox)
            self.pods.pop((pod.namespace, pod.name), None)
        self._remove_containers(names)
        return [join(["docker", "rm", "-f", *names])] if names else []

    def _remove_containers(self, names: Sequence[str]) -> None:
        import docker

        def remove(name: str) -> None:
            try:
                self.client.api.remove_container(name, force=True, v=True)
            except docker.errors.NotFound:
                pass

        if names:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(remove, names))

    # helpers: docker ------------------------------------------------------------------------------------
    def _labels(self, role: str, pod: str | None = None, container: str | None = None) -> dict[str, str]:
        labels = {HARNESS_LABEL: self.run_id, ROLE_LABEL: role}
        if pod:
            labels[POD_LABEL] = pod
        if container:
            labels[CONTAINER_LABEL] = container
        return labels

    def _create_and_start(self, spec: ContainerSpec):
        api = self.client.api
        networking = None
        if spec.network and not spec.network.startswith("container:"):
            networking = api.create_networking_config(
                {spec.network: api.create_endpoint_config(aliases=spec.aliases or None)}
            )
        host_config = api.create_host_config(
            network_mode=spec.network, cap_add=spec.cap_add or None, binds=spec.binds or None, init=False
        )
        created = api.create_container(
            spec.image,
            command=spec.command,
            entrypoint=spec.entrypoint,
            environment=spec.env or None,
            user=spec.user or "",
            name=spec.name,
            hostname=spec.hostname,
            labels=spec.labels,
            working_dir=spec.workdir,
            host_config=host_config,
            networking_config=networking,
        )
        api.start(created["Id"])
        return self.client.containers.get(created["Id"])

    def _start(self, spec: ContainerSpec):
        import docker

        try:
            return self._create_and_start(spec)
        except docker.errors.ImageNotFound:
            raise PodStartError(
                f"image {spec.image} is not available locally; the docker backend never pulls "
                "(use an egress-mesh/* image or `docker pull` it first)"
            ) from None
        except docker.errors.APIError as exc:
            raise PodStartError(f"docker could not start {spec.name}: {exc.explanation or exc}") from None

    def _ip(self, container: str) -> str:
        networks = self.client.api.inspect_container(container)["NetworkSettings"]["Networks"]
        return (networks.get(self.mesh_network) or {}).get("IPAddress", "")

    def _exec(self, container: str, argv: list[str]) -> tuple[int, str, str]:
        api = self.client.api
        exec_id = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
        out, err = api.exec_start(exec_id, demux=True)
        code = api.exec_inspect(exec_id).get("ExitCode")
        return (
            code if code is not None else 1,
            (out or b"").decode(errors="replace"),
            (err or b"").decode(errors="replace"),
        )

    def _probe(self, container: str, argv: list[str]) -> bool:
        import docker

        try:
            return self._exec(container, argv)[0] == 0
        except docker.errors.APIError:
            return False

    def _logs(self, container: str) -> tuple[str, str]:
        api = self.client.api
        out = api.logs(container, stdout=True, stderr=False)
        err = api.logs(container, stdout=False, stderr=True)
        return out.decode(errors="replace"), err.decode(errors="replace")

    def _wait(
        self, check: Callable[[], bool], timeout: float, what: str, why: Callable[[], str] | None = None
    ) -> None:
        retrying = Retrying(
            stop=stop_after_delay(timeout), wait=wait_fixed(POLL), retry=retry_if_result(lambda ok: not ok)
        )
        try:
            retrying(check)
        except RetryError:
            detail = why() if why else ""
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}" + (f": {detail}" if detail else "")
            ) from None

    def _require_up(self) -> None:
        if self.client is None:
            self.up()

    # helpers: command lines -----------------------------------------------------------------------------
    def _read_manifest(self, filename: str) -> str:
        if "://" in filename:
            for suffix, local in ARTICLE_URLS.items():
                if filename.endswith(suffix):
                    return local.read_text()
            raise Unsupported(f"the docker backend has no internet: cannot fetch {filename}")
        try:
            return Path(filename).read_text()
        except OSError as exc:
            raise Unsupported(f"cannot read {filename}: {exc.strerror}") from None

    @staticmethod
    def _flag(args: Sequence[str], names: Sequence[str]) -> str | None:
        for i, arg in enumerate(args):
            for name in names:
                if arg == name and i + 1 < len(args):
                    return args[i + 1]
                if arg.startswith(name + "="):
                    return arg.split("=", 1)[1]
        return None

    @staticmethod
    def _positional(args: Sequence[str], valued: set[str] | None = None) -> tuple[list[str], str | None]:
        valued = {"-n", "--namespace", "-p", "--patch", "--type", "-l", "--selector", "-o", "--output"} | (
            valued or set()
        )
        names: list[str] = []
        namespace = None
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                break
            if arg in valued:
                if arg in ("-n", "--namespace") and i + 1 < len(args):
                    namespace = args[i + 1]
                i += 2
                continue
            if arg.startswith("--namespace="):
                namespace = arg.split("=", 1)[1]
            elif not arg.startswith("-"):
                names.append(arg)
            i += 1
        if len(names) == 1 and "/" in names[0]:
            names = names[0].split("/", 1)
        return names, namespace

    def _namespace_command(self, argv: list[str]) -> OpResult:
        action, names = argv[2], [a for a in argv[3:] if not a.startswith("-")]
        mesh_name = self.mesh_options.mesh_name if self.mesh_options else "osm"
        flag = self._flag(argv[3:], ("--mesh-name",))
        mesh_name = flag or mesh_name
        names = [n for n in names if n != flag]
        if action not in ("add", "remove") or not names:
            raise Unsupported(f"the docker backend does not interpret {join(argv)!r}")
        actions, output = [], []
        with self._lock:
            for name in names:
                obj = self.objects.get(("Namespace", "", name))
                if obj is None:
                    return OpResult(join(argv), 1, stderr=f'Error: namespace "{name}" not found')
                meta = copy.deepcopy(obj)["metadata"]
                labels = dict(meta.get("labels") or {})
                annotations = dict(meta.get("annotations") or {})
                if action == "add":
                    labels[MONITORED_BY] = mesh_name
                    if "--disable-sidecar-injection" in argv:
                        annotations[INJECTION] = "disabled"
                    else:
                        annotations.setdefault(INJECTION, "enabled")
                    output.append(f"Namespace [{name}] successfully added to mesh [{mesh_name}]")
                else:
                    labels.pop(MONITORED_BY, None)
                    annotations.pop(INJECTION, None)
                    output.append(f"Namespace [{name}] successfully removed from mesh [{mesh_name}]")
                updated = {**obj, "metadata": {**meta, "labels": labels, "annotations": annotations}}
                actions += self._store(updated)
            return self._with_boundary(OpResult("\n".join(actions), 0, "\n".join(output)))

    def _metadata_command(self, argv: list[str]) -> OpResult:
        verb, rest = argv[1], argv[2:]
        overwrite = "--overwrite" in rest
        args = [a for a in rest if a != "--overwrite"]
        names, namespace = self._positional(args)
        pairs = [n for n in names if "=" in n or n.endswith("-")]
        targets = [n for n in names if n not in pairs]
        if len(targets) < 2 or not pairs:
            raise Unsupported(
                f"the docker backend needs `kubectl {verb} KIND NAME KEY=VALUE`, got {join(argv)!r}"
            )
        kind = kind_of(targets[0])
        ns = "" if kind in CLUSTER_SCOPED else (namespace or "default")
        field_name = "annotations" if verb == "annotate" else "labels"
        with self._lock:
            obj = self.objects.get((kind, ns, targets[1]))
            if obj is None:
                return OpResult(
                    join(argv), 1, stderr=f'Error from server (NotFound): "{targets[1]}" not found'
                )
            obj = copy.deepcopy(obj)
            values = dict(obj["metadata"].get(field_name) or {})
            for pair in pairs:
                if pair.endswith("-") and "=" not in pair:
                    values.pop(pair[:-1], None)
                    continue
                key, value = pair.split("=", 1)
                if key in values and values[key] != value and not overwrite:
                    return OpResult(
                        join(argv),
                        1,
                        stderr=f"error: {key!r} already has a value ({values[key]}); use --overwrite",
                    )
                values[key] = value
            obj["metadata"][field_name] = values
            actions = self._store(obj)
            done = "annotated" if verb == "annotate" else "labeled"
            return self._with_boundary(OpResult("\n".join(actions), 0, f"{kind.lower()}/{targets[1]} {done}"))

    def _patch_command(self, argv: list[str]) -> OpResult:
        rest = argv[2:]
        names, namespace = self._positional(rest)
        text = self._flag(rest, ("-p", "--patch"))
        if len(names) < 2 or text is None:
            raise Unsupported(
                f"the docker backend needs `kubectl patch KIND NAME -p PATCH`, got {join(argv)!r}"
            )
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            try:
                body = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                return OpResult(join(argv), 1, stderr=f"error: the patch is not JSON or YAML: {exc}")
        return self.patch(names[0], names[1], namespace, body, self._flag(rest, ("--type",)) or "strategic")

    def _get_command(self, argv: list[str]) -> OpResult:
        rest = argv[2:]
        names, namespace = self._positional(rest)
        if not names or kind_of(names[0]) != "Pod":
            raise Unsupported(f"the docker backend only answers `kubectl get pod`, got {join(argv)!r}")
        selector = self._flag(rest, ("-l", "--selector")) or ""
        pods = self._select(namespace or "default", selector)
        if len(names) > 1:
            pods = [p for p in pods if p.name == names[1]]
        output = self._flag(rest, ("-o", "--output")) or ""
        if output.startswith("jsonpath") and "podIP" in output:
            text = " ".join(p.ip for p in pods)
        elif output.startswith("jsonpath") or output == "name":
            text = " ".join(p.name if not output == "name" else f"pod/{p.name}" for p in pods)
        else:
            lines = ["NAME\tREADY\tSTATUS\tIP"]
            for pod in pods:
                status = "Error" if pod.failed else "Running"
                lines.append(f"{pod.name}\t{len(pod.containers)}/{len(pod.containers)}\t{status}\t{pod.ip}")
            text = "\n".join(lines)
        filt = f"label={POD_LABEL}"
        return OpResult(
            join(["docker", "ps", "--filter", f"label={HARNESS_LABEL}={self.run_id}", "--filter", filt]),
            0,
            text,
        )

    def _exec_command(self, argv: list[str]) -> OpResult:
        if "--" not in argv:
            raise Unsupported(
                f"the docker backend needs `kubectl exec POD -n NS -c C -- COMMAND`, got {join(argv)!r}"
            )
        split = argv.index("--")
        head, command = argv[2:split], argv[split + 1 :]
        names, namespace = self._positional(head, {"-c", "--container"})
        container = self._flag(head, ("-c", "--container"))
        if not names:
            raise Unsupported(f"the docker backend needs a pod name in {join(argv)!r}")
        pod = self.pods.get((namespace or "default", names[0]))
        if pod is None:
            return OpResult(
                join(argv), 1, stderr=f'Error from server (NotFound): pods "{names[0]}" not found'
            )
        target = pod.containers.get(container or pod.app_containers[0])
        if target is None:
            return OpResult(join(argv), 1, stderr=f"container {container} is not valid for pod {pod.name}")
        code, out, err = self._exec(target, command)
        return OpResult(join(["docker", "exec", target, *command]), code, out, err)


class PodStartError(RuntimeError):
    """A pod's container could not start; the message says which and why."""


def remove_run(client, run_id: str | None = None) -> list[str]:
    """Remove every container and network of one harness run (all runs when ``run_id`` is None)."""
    label = HARNESS_LABEL if run_id is None else f"{HARNESS_LABEL}={run_id}"
    containers = client.containers.list(all=True, filters={"label": label})

    def remove(container) -> None:
        try:
            container.remove(force=True, v=True)
        except Exception:  # already gone
            pass

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, containers))
    networks = client.networks.list(filters={"label": label})
    for network in networks:
        try:
            network.remove()
        except Exception:  # still in use by a container of another run
            pass
    from scenarios.clusters.docker_firewall import remove_chains

    chains = remove_chains(run_id)
    pattern = f"egress-mesh-{run_id or '*'}-manifests-*"
    folders = glob.glob(os.path.join(tempfile.gettempdir(), pattern))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return [c.name for c in containers] + [n.name for n in networks] + folders + chains


def main(argv: list[str] | None = None) -> int:
    """``python -m scenarios.clusters.docker clean [RUN_ID]``: remove what harness runs left behind
    (every run's containers and networks, or one run's)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["clean"] or len(args) > 2:
        print("usage: python -m scenarios.clusters.docker clean [RUN_ID]", file=sys.stderr)
        return 2
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        print(f"error: no Docker engine answers ({exc})", file=sys.stderr)
        return 1
    for name in remove_run(client, args[1] if len(args) > 1 else None):
        print(f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
