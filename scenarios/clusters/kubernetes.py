"""What every Kubernetes backend shares: kubectl/meshctl subprocesses against one kubeconfig.

Subclasses (k3s, kind, k3d, k3s-container, external) only say how the cluster comes up, goes
down and receives images. Command lines are built by pure functions (``commands``, tested without
a cluster); every ``OpResult.command`` is the kubectl command as a user would type it, in the
article's form. Pods are picked and diagnosed by ``pods``, images moved by ``k8s_images``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from mesh.api.resources import DEFAULT_MESHCONFIG_NAME, MONITORED_BY_LABEL
from scenarios.clusters import coredns
from scenarios.clusters.base import (
    BackendOptions,
    BackendUnavailable,
    Cluster,
    MeshOptions,
    OpResult,
    Unsupported,
    join,
)
from scenarios.clusters.commands import (
    apply_argv,
    apply_display,
    delete_argv,
    exec_argv,
    exec_display,
    get_pods_argv,
    install_argv,
    logs_argv,
    logs_display,
    map_osm_argv,
    meshctl_base,
    patch_argv,
    reset_argvs,
    uninstall_argv,
    wait_display,
)
from scenarios.clusters.k8s_images import (
    combined_tag,
    docker_tag,
    export_images,
    missing_refs,
    retag_plan,
    short_name,
    substitute_images,
)
from scenarios.clusters.kubectl import apply_target
from scenarios.clusters.pods import container_problem, describe_not_ready, live_pods, pick_pod, pod_is_ready
from scenarios.names import GATEWAY_NAMESPACE, GATEWAY_SELECTOR, MANIFESTS_DIR, SAMPLE_NAMESPACES

STANDINS_MANIFEST = MANIFESTS_DIR / "standins.yaml"
COMMAND_TIMEOUT = 300.0
#: the kubectl CI installs (and doctor suggests): one minor of skew each way covers 1.35-1.37
KUBECTL_VERSION = "v1.36.4"
#: namespaces a harness never deletes on reset
SYSTEM_NAMESPACES = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", "local-path-storage"}
)


def default_kubeconfig(explicit: str | None = None) -> str | None:
    """``options.kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``, then ``/etc/rancher/k3s/k3s.yaml``."""
    candidates = [
        explicit,
        os.environ.get("KUBECONFIG"),
        str(Path.home() / ".kube" / "config"),
        "/etc/rancher/k3s/k3s.yaml",
    ]
    for candidate in candidates:
        if not candidate:
            continue
        first = candidate.split(os.pathsep)[0]
        if Path(first).expanduser().is_file():
            return candidate
    return None


def minor_of(version: str) -> str:
    """``v1.36.4`` / ``1.36`` / ``1.36.4+k3s1`` -> ``1.36``."""
    match = re.match(r"^v?(\d+)\.(\d+)", version.strip())
    if not match:
        raise ValueError(f"not a Kubernetes version: {version!r} (expected e.g. v1.36.4 or 1.36)")
    return f"{match.group(1)}.{match.group(2)}"


def pick_version(version: str | None, pinned: Mapping[str, str]) -> str:
    """The pinned full version for ``version``'s minor (``pinned``: minor -> full), the newest when
    ``version`` is None, or ``version`` itself (without ``v``) when its minor is not pinned."""
    if not version:
        return pinned[max(pinned, key=lambda m: tuple(int(x) for x in m.split(".")))]
    minor = minor_of(version)
    bare = version.strip().lstrip("v")
    if bare == minor or bare == pinned.get(minor, "").split("@")[0].split("+")[0]:
        return pinned.get(minor, bare)
    return bare


class KubernetesCluster(Cluster):
    """A Cluster reached through ``kubectl`` and ``meshctl`` with ``KUBECONFIG`` set."""

    name = "kubernetes"
    #: the harness created this cluster and may delete whole sample namespaces in it
    harness_owned = False
    #: image pull policy for the mesh and sample images (Never would also do for preloaded images)
    pull_policy = "IfNotPresent"
    #: how the stand-in names reach CoreDNS: "corefile" (edit the coredns ConfigMap) or "k3s"
    #: (k3s's own ``coredns-custom`` ConfigMap, since k3s rewrites ``coredns`` on restart)
    coredns_mode = "corefile"

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self.kubeconfig: str | None = self.options.kubeconfig
        self.mesh_options = MeshOptions()
        self.registry = "egress-mesh"
        self.image_tag: str | None = None
        #: short name -> ref as the cluster knows it (after retag/push)
        self.images: dict[str, str] = {}
        self._baseline_namespaces: set[str] | None = None
        self._meshconfig_spec: dict | None = None
        self._artifact_round = 0
        #: up() found or created the cluster (down() touches nothing otherwise)
        self.connected = False

    # capabilities ------------------------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        caps = {"kubernetes", "kubectl", "webhook", "iptables", "gateway-log", "pod-ip", "meshctl"}
        if self.options.external == "internet":
            caps.add("internet")
        else:
            caps |= {"standins", "coredns"}
        return frozenset(caps)

    # subprocess plumbing -----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    def _run(
        self,
        argv: Sequence[str],
        display: str | None = None,
        stdin: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> OpResult:
        command = display if display is not None else join(argv)
        try:
            proc = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, env=self.env(), timeout=timeout
            )
        except FileNotFoundError:
            return OpResult(command, 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return OpResult(command, 124, "", f"timed out after {timeout:.0f}s")
        return OpResult(command, proc.returncode, proc.stdout, proc.stderr)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT) -> OpResult:
        return self._run(["kubectl", *args], stdin=stdin, timeout=timeout)

    def _get_json(self, *args: str) -> dict:
        result = self.kubectl("get", *args, "-o", "json")
        if not result.ok:
            raise RuntimeError(f"{result.command} failed: {result.stderr.strip()}")
        return json.loads(result.stdout or "{}")

    def _pods(self, namespace: str, selector: str | None) -> list[dict]:
        result = self._run(get_pods_argv(namespace, selector))
        if not result.ok:
            return []
        return json.loads(result.stdout or "{}").get("items", [])

    def check_reachable(self) -> None:
        if not shutil.which("kubectl"):
            raise BackendUnavailable(
                f"{self.name}: kubectl is not on PATH; install it (https://kubernetes.io/docs/tasks/tools/)"
            )
        result = self.kubectl("get", "--raw=/readyz", timeout=30)
        if not result.ok:
            where = self.kubeconfig or "the default kubeconfig"
            raise BackendUnavailable(
                f"{self.name}: no Kubernetes cluster reachable with {where}: {result.stderr.strip()}"
            )

    # lifecycle (subclasses override _create/_destroy/_import_archive) ----------------------------------
    def up(self) -> None:
        self._create()
        self.connected = True
        self.check_reachable()
        if self._baseline_namespaces is None:
            self._baseline_namespaces = self._namespaces()

    def _create(self) -> None:
        """Create or find the cluster and set ``self.kubeconfig``."""

    def _destroy(self) -> None:
        """Delete the cluster if this backend owns it."""

    def down(self, keep: bool = False) -> None:
        if not self.connected:
            return  # up() never reached a cluster: nothing of ours to save or remove
        if keep or self.options.keep:
            self.save_artifacts("down")
            return
        self.save_artifacts("down")
        if not self.harness_owned:
            self._clean_in_cluster()
        self._destroy()

    def _clean_in_cluster(self) -> None:
        self.reset()
        self.remove_standins()
        self._run(uninstall_argv(self.mesh_options, meshctl_base()))

    # images -----------------------------------------------------------------------------------------
    def load_images(self, images: Sequence[str]) -> list[OpResult]:
        """Retag every image with one run tag (meshctl takes a single tag), then hand them to the cluster."""
        if not images:
            return []
        self.image_tag = combined_tag(images)
        plan = retag_plan(images, self.registry, self.image_tag)
        results = [docker_tag(src, dst) for src, dst in plan.items()]
        failed = [r for r in results if not r.ok]
        if failed:
            raise BackendUnavailable(f"{self.name}: could not tag images: {failed[0].stderr.strip()}")
        self.images = {short_name(dst): dst for dst in plan.values()}
        results += self._import_images(list(plan.values()))
        return results

    def _import_images(self, refs: list[str]) -> list[OpResult]:
        """Default: ``docker save`` archives, each loaded by ``self._load_archive``."""
        with tempfile.TemporaryDirectory(prefix="egress-mesh-images-") as tmp:
            try:
                results, files = export_images(refs, tmp)
            except Exception as error:  # docker SDK / engine errors
                raise BackendUnavailable(f"{self.name}: docker save failed: {error}") from None
            for result in results:
                if not result.ok:
                    raise BackendUnavailable(f"{self.name}: {result.command} failed: {result.stderr.strip()}")
            for archive in files:
                loaded = self._load_archive(archive)
                results.append(loaded)
                if not loaded.ok:
                    raise BackendUnavailable(f"{self.name}: {loaded.command} failed: {loaded.stderr.strip()}")
        return results + self._check_loaded(refs)

    def _load_archive(self, archive: str) -> OpResult:
        raise Unsupported(f"{self.name} cannot load image archives")

    def node_images(self) -> OpResult | None:
        """``ctr images ls -q`` in the node's containerd (k8s.io namespace); None: cannot look."""
        return None

    def _check_loaded(self, refs: Sequence[str]) -> list[OpResult]:
        """Fail now, not as ImagePullBackOff later, when a ref the pods use did not arrive."""
        listing = self.node_images()
        if listing is None:
            return []
        if not listing.ok:
            raise BackendUnavailable(f"{self.name}: {listing.command} failed: {listing.stderr.strip()}")
        missing = missing_refs(refs, listing.stdout.split())
        if missing:
            raise BackendUnavailable(
                f"{self.name}: after loading, the node's containerd lacks {', '.join(missing)} "
                f"({listing.command} lists {len(listing.stdout.split())} images)"
            )
        return [listing]

    # mesh ---------------------------------------------------------------------------------------------
    def install_mesh(self, options: MeshOptions) -> list[OpResult]:
        self.mesh_options = options
        results: list[OpResult] = []
        if self.options.external != "internet":
            results += self.deploy_standins()
        tag = self.image_tag or "latest"
        install = self._run(install_argv(options, self.registry, tag, self.pull_policy, meshctl_base()))
        install.command = join(install_argv(options, self.registry, tag, self.pull_policy))
        results.append(install)
        if not install.ok:
            raise RuntimeError(
                f"{install.command} failed (exit {install.exit_code}):\n{install.stderr.strip()}"
            )
        results.append(self.wait_ready(options.mesh_namespace, "", timeout=180))
        # a reused cluster may hold a MeshConfig from an earlier run: the install's setting wins
        egress = {"spec": {"traffic": {"enableEgress": options.enable_egress}}}
        results.append(self.patch("meshconfig", DEFAULT_MESHCONFIG_NAME, options.mesh_namespace, egress))
        meshconfig = self._get_json("meshconfig", DEFAULT_MESHCONFIG_NAME, "-n", options.mesh_namespace)
        self._meshconfig_spec = meshconfig.get("spec")
        self._baseline_namespaces = (self._baseline_namespaces or set()) | self._namespaces()
        return results

    def deploy_standins(self) -> list[OpResult]:
        results = [self.apply(STANDINS_MANIFEST.read_text())]
        if not results[0].ok:
            raise RuntimeError(f"stand-ins not applied: {results[0].stderr.strip()}")
        results.append(self.wait_ready(coredns.STANDIN_NAMESPACE, "app=standin", timeout=120))
        results += coredns.add_rewrites(self)
        return results

    def remove_standins(self) -> list[OpResult]:
        if self.options.external == "internet":
            return []
        results = coredns.remove_rewrites(self)
        results.append(self.kubectl("delete", "namespace", coredns.STANDIN_NAMESPACE, "--ignore-not-found"))
        return results

    def reset(self) -> None:
        self.save_artifacts("reset")
        doomed = sorted(self._sample_namespaces())
        for argv in reset_argvs(doomed, self.mesh_options.mesh_namespace, self._meshconfig_spec):
            self._run(argv)

    def _namespaces(self) -> set[str]:
        try:
            items = self._get_json("namespaces").get("items", [])
        except RuntimeError:
            return set()
        return {item["metadata"]["name"] for item in items}

    def _sample_namespaces(self) -> set[str]:
        """Namespaces made by scenarios (not there at install) and the article's sample namespaces,
        plus, in harness-owned clusters, meshed namespaces a previous kept run left behind."""
        keep = set(SYSTEM_NAMESPACES) | {self.mesh_options.mesh_namespace, coredns.STANDIN_NAMESPACE}
        current = self._namespaces()
        doomed = (current - (self._baseline_namespaces or current)) | (current & SAMPLE_NAMESPACES)
        if self.harness_owned:
            try:
                items = self._get_json("namespaces", "-l", MONITORED_BY_LABEL).get("items", [])
            except RuntimeError:
                items = []
            doomed |= {item["metadata"]["name"] for item in items}
        return doomed - keep

    def save_artifacts(self, when: str) -> None:
        """With ``EGRESS_MESH_ARTIFACTS=DIR``: controller and gateway logs and events into DIR (for CI)."""
        target = os.environ.get("EGRESS_MESH_ARTIFACTS")
        if not target or not self.kubeconfig:
            return
        directory = Path(target)
        directory.mkdir(parents=True, exist_ok=True)
        self._artifact_round += 1
        stamp = f"{self._artifact_round:03d}-{when}"
        for label, namespace, selector in (
            ("controller", self.mesh_options.mesh_namespace, ""),
            ("gateway", GATEWAY_NAMESPACE, GATEWAY_SELECTOR),
        ):
            for pod in self._pods(namespace, selector or None):
                name = pod["metadata"]["name"]
                result = self._run(["kubectl", "logs", "-n", namespace, name, "--all-containers", "--prefix"])
                if result.stdout:
                    (directory / f"{label}-{stamp}-{name}.log").write_text(result.stdout)
        events = self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp")
        if events.stdout:
            (directory / f"events-{stamp}.txt").write_text(events.stdout)

    # resources ----------------------------------------------------------------------------------------
    def apply(self, manifest: str, namespace: str | None = None) -> OpResult:
        text = substitute_images(manifest, self.images, self.pull_policy if self.images else None)
        return self._run(apply_argv(namespace), display=apply_display(text, namespace), stdin=text)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> OpResult:
        return self._run(delete_argv(kind, name, namespace))

    def patch(
        self, kind: str, name: str, namespace: str | None, patch: dict, patch_type: str = "merge"
    ) -> OpResult:
        return self._run(patch_argv(kind, name, namespace, patch, patch_type))

    def run(self, argv: Sequence[str]) -> OpResult:
        if not argv:
            raise Unsupported("empty command")
        program = argv[0]
        if program in ("osm", "meshctl"):
            result = self._run(map_osm_argv(argv, meshctl_base()))
            result.command = join(argv)
            return result
        if program != "kubectl":
            raise Unsupported(f"{self.name} runs kubectl and osm/meshctl commands only, not {program!r}")
        target = apply_target(argv)
        if target and argv[1] == "apply":
            filename, namespace = target
            result = self.apply(Path(filename).read_text(), namespace)
            result.command = join(argv)
            return result
        return self._run(argv)

    # pods ---------------------------------------------------------------------------------------------
    def _pick(self, namespace: str, selector: str) -> str | None:
        pod = pick_pod(self._pods(namespace, selector))
        return pod["metadata"]["name"] if pod else None

    def exec(self, namespace: str, selector: str, container: str, argv: Sequence[str]) -> OpResult:
        display = exec_display(namespace, selector, container, argv)
        pod = self._pick(namespace, selector)
        if pod is None:
            return OpResult(display, 1, "", f"no pod matches -l {selector} in namespace {namespace}")
        return self._run(exec_argv(pod, namespace, container, argv), display=display)

    def logs(self, namespace: str, selector: str, container: str | None = None) -> OpResult:
        display = logs_display(namespace, selector, container)
        pod = self._pick(namespace, selector)
        if pod is None:
            return OpResult(display, 1, "", f"no pod matches -l {selector} in namespace {namespace}")
        return self._run(logs_argv(pod, namespace, container), display=display)

    def pod_ip(self, namespace: str, selector: str) -> str:
        pod = pick_pod(self._pods(namespace, selector))
        ip = ((pod or {}).get("status") or {}).get("podIP")
        if not ip:
            raise LookupError(f"no pod with an IP matches -l {selector} in namespace {namespace}")
        return ip

    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        display = wait_display(namespace, selector, timeout)

        def all_ready() -> bool:
            pods = live_pods(self._pods(namespace, selector or None))
            return bool(pods) and all(pod_is_ready(p) for p in pods)

        retrying = Retrying(
            stop=stop_after_delay(timeout), wait=wait_fixed(1), retry=retry_if_result(lambda ok: not ok)
        )
        try:
            retrying(all_ready)
        except RetryError:
            raise TimeoutError(f"after {timeout:.0f}s: " + self.diagnose(namespace, selector)) from None
        return OpResult(display, 0, "ready\n")

    def diagnose(self, namespace: str, selector: str) -> str:
        pods = self._pods(namespace, selector or None)
        try:
            events = self._get_json("events", "-n", namespace, "--sort-by=.lastTimestamp").get("items", [])
        except RuntimeError:
            events = []
        logs: dict[tuple[str, str], str] = {}
        for pod in live_pods(pods):
            if pod_is_ready(pod):
                continue
            name, status = pod["metadata"]["name"], pod.get("status") or {}
            for cs in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
            ]:
                has_run = cs.get("restartCount") or {"running", "terminated"} & set(cs.get("state") or {})
                if container_problem(cs) and has_run:
                    out = self._run(logs_argv(name, namespace, cs["name"], tail=20))
                    logs[(name, cs["name"])] = out.stdout or out.stderr
        return describe_not_ready(namespace, selector, pods, events, logs)
