"""httpbin.org and httpstat.us inside the cluster: a CoreDNS ``rewrite name`` rule per stand-in.

The stand-ins run outside the mesh in namespace ``external-services`` (Services ``httpbin`` and
``httpstat``). Two ways to add the rules, chosen by the backend (``coredns_mode``):

- ``corefile`` (kind, external): a marked block in the ``Corefile`` of ConfigMap
  ``kube-system/coredns``, removed exactly afterwards. The edits are pure functions: adding twice
  is adding once, and removing restores the original text.
- ``k3s`` (k3s, k3d, k3s-container): k3s owns ``coredns`` and rewrites it when it restarts, so the
  rules go into k3s's extension point instead: key ``egress-mesh.override`` of ConfigMap
  ``kube-system/coredns-custom`` (mounted at ``/etc/coredns/custom``, imported by k3s's Corefile
  with ``import /etc/coredns/custom/*.override`` inside the root server block). Only that key
  is added and removed; other keys of ``coredns-custom`` are the user's and stay.

Either way CoreDNS is restarted and awaited after each change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from scenarios.clusters.base import OpResult

STANDIN_NAMESPACE = "external-services"
#: public name -> Service in STANDIN_NAMESPACE
STANDIN_HOSTS: dict[str, str] = {"httpbin.org": "httpbin", "httpstat.us": "httpstat"}
BEGIN = "# egress-mesh stand-ins: begin"
END = "# egress-mesh stand-ins: end"
CONFIGMAP, CONFIGMAP_NAMESPACE, COREFILE_KEY = "coredns", "kube-system", "Corefile"
CUSTOM_CONFIGMAP, OVERRIDE_KEY = "coredns-custom", "egress-mesh.override"
#: the line k3s's Corefile carries in its root server block (k3s manifests/coredns.yaml)
K3S_OVERRIDE_IMPORT = "import /etc/coredns/custom/*.override"


def cluster_domain(corefile: str) -> str:
    """The domain of the ``kubernetes`` plugin (``cluster.local`` unless configured otherwise)."""
    match = re.search(r"^\s*kubernetes\s+([A-Za-z0-9.-]+)", corefile, re.MULTILINE)
    return match.group(1).rstrip(".") if match else "cluster.local"


def rewrite_rules(
    domain: str, hosts: Mapping[str, str] = STANDIN_HOSTS, namespace: str = STANDIN_NAMESPACE
) -> list[str]:
    return [f"rewrite name exact {host} {svc}.{namespace}.svc.{domain}" for host, svc in hosts.items()]


def remove_block(corefile: str) -> str:
    """The Corefile without the harness's block (unchanged when there is none)."""
    lines = corefile.splitlines(keepends=True)
    out: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
            continue
        if inside:
            if stripped == END:
                inside = False
            continue
        out.append(line)
    return "".join(out)


def add_block(
    corefile: str, hosts: Mapping[str, str] = STANDIN_HOSTS, namespace: str = STANDIN_NAMESPACE
) -> str:
    """Insert the rewrite block at the top of the root (``.:53``) server block; idempotent."""
    base = remove_block(corefile)
    lines = base.splitlines(keepends=True)
    opener = re.compile(r"^\s*\.(:\d+)?\s*\{\s*$")
    index = next((i for i, line in enumerate(lines) if opener.match(line)), None)
    if index is None or not lines[index].endswith("\n"):
        raise ValueError("no root server block ('.:53 {') found in the CoreDNS Corefile")
    following = lines[index + 1] if index + 1 < len(lines) else "    "
    indent = following[: len(following) - len(following.lstrip())] or "    "
    block = [BEGIN, *rewrite_rules(cluster_domain(base), hosts, namespace), END]
    inserted = [f"{indent}{text}\n" for text in block]
    return "".join(lines[: index + 1] + inserted + lines[index + 1 :])


def has_block(corefile: str) -> bool:
    return BEGIN in corefile


def override_text(domain: str, hosts: Mapping[str, str] = STANDIN_HOSTS) -> str:
    """The ``egress-mesh.override`` file: the same rewrite rules, one per line."""
    return "".join(f"{rule}\n" for rule in [BEGIN, *rewrite_rules(domain, hosts), END])


def imports_k3s_overrides(corefile: str) -> bool:
    return any(line.strip() == K3S_OVERRIDE_IMPORT for line in corefile.splitlines())


def custom_configmap(data: Mapping[str, str]) -> str:
    """A new ``coredns-custom`` ConfigMap holding ``data`` (for ``kubectl create -f -``)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CUSTOM_CONFIGMAP, "namespace": CONFIGMAP_NAMESPACE},
            "data": dict(data),
        }
    )


def custom_patch_argv(value: str | None) -> list[str]:
    """Set (or, with None, remove) our key of ``coredns-custom`` and nothing else."""
    body = json.dumps({"data": {OVERRIDE_KEY: value}}, separators=(",", ":"))
    return ["kubectl", "patch", "configmap", CUSTOM_CONFIGMAP, "-n", CONFIGMAP_NAMESPACE, "--type=merge",
            "-p", body]  # fmt: skip


def custom_create_argv() -> list[str]:
    return ["kubectl", "create", "-f", "-"]


def custom_delete_argv() -> list[str]:
    return [
        "kubectl",
        "delete",
        "configmap",
        CUSTOM_CONFIGMAP,
        "-n",
        CONFIGMAP_NAMESPACE,
        "--ignore-not-found",
    ]


def configmap_patch_argv(corefile: str) -> list[str]:
    body = json.dumps({"data": {COREFILE_KEY: corefile}}, separators=(",", ":"))
    return ["kubectl", "patch", "configmap", CONFIGMAP, "-n", CONFIGMAP_NAMESPACE, "--type=merge", "-p", body]


def restart_argv() -> list[str]:
    return ["kubectl", "rollout", "restart", "deployment/coredns", "-n", CONFIGMAP_NAMESPACE]


def rollout_status_argv(timeout: int = 120) -> list[str]:
    return [
        "kubectl",
        "rollout",
        "status",
        "deployment/coredns",
        "-n",
        CONFIGMAP_NAMESPACE,
        f"--timeout={timeout}s",
    ]


# ---- against a cluster --------------------------------------------------------------------------
class KubernetesCluster(Protocol):
    """What the rules need of a Kubernetes backend (``scenarios.clusters.kubernetes`` has it)."""

    coredns_mode: str

    def _run(self, argv: Sequence[str], display: str | None = None, stdin: str | None = None) -> OpResult: ...

    def kubectl(self, *args: str) -> OpResult: ...

    def _get_json(self, *args: str) -> dict: ...

    def diagnose(self, namespace: str, selector: str) -> str: ...


def _current(cluster: KubernetesCluster) -> str:
    data = cluster._get_json("configmap", CONFIGMAP, "-n", CONFIGMAP_NAMESPACE)
    corefile = (data.get("data") or {}).get(COREFILE_KEY)
    if corefile is None:
        raise RuntimeError(f"configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP} has no {COREFILE_KEY} key")
    return corefile


def _write(cluster: KubernetesCluster, corefile: str) -> list[OpResult]:
    results = [cluster._run(configmap_patch_argv(corefile))]
    if not results[-1].ok:
        raise RuntimeError(f"CoreDNS ConfigMap not patched: {results[-1].stderr.strip()}")
    return results + _restart(cluster)


def _restart(cluster: KubernetesCluster) -> list[OpResult]:
    results = [cluster._run(restart_argv())]
    results.append(cluster._run(rollout_status_argv()))
    if not results[-1].ok:
        raise RuntimeError(
            "CoreDNS did not come back after restart:\n" + cluster.diagnose("kube-system", "k8s-app=kube-dns")
        )
    return results


def _custom_data(cluster: KubernetesCluster) -> dict[str, str] | None:
    """``coredns-custom``'s data, or None when there is no such ConfigMap."""
    result = cluster.kubectl("get", "configmap", CUSTOM_CONFIGMAP, "-n", CONFIGMAP_NAMESPACE, "-o", "json")
    if not result.ok:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return None
        raise RuntimeError(f"{result.command} failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "{}").get("data") or {}


def _add_k3s_override(cluster: KubernetesCluster, corefile: str) -> list[OpResult]:
    if not imports_k3s_overrides(corefile):
        raise RuntimeError(
            f"this k3s's CoreDNS does not read {CUSTOM_CONFIGMAP} (its Corefile lacks "
            f"'{K3S_OVERRIDE_IMPORT}'); use a k3s release that does (v1.22 or newer) or --external internet"
        )
    wanted = override_text(cluster_domain(corefile))
    data = _custom_data(cluster)
    if data is not None and data.get(OVERRIDE_KEY) == wanted:
        return []
    if data is None:
        body = custom_configmap({OVERRIDE_KEY: wanted})
        result = cluster._run(
            custom_create_argv(), display=f"kubectl create -f - <<EOF\n{body}\nEOF", stdin=body
        )
    else:
        result = cluster._run(custom_patch_argv(wanted))
    if not result.ok:
        raise RuntimeError(f"{CUSTOM_CONFIGMAP} not written: {result.stderr.strip()}")
    return [result, *_restart(cluster)]


def _remove_k3s_override(cluster: KubernetesCluster) -> list[OpResult]:
    data = _custom_data(cluster)
    if data is None or OVERRIDE_KEY not in data:
        return []
    only_ours = set(data) == {OVERRIDE_KEY}
    result = cluster._run(custom_delete_argv() if only_ours else custom_patch_argv(None))
    if not result.ok:
        raise RuntimeError(f"{CUSTOM_CONFIGMAP} not cleaned: {result.stderr.strip()}")
    return [result, *_restart(cluster)]


def add_rewrites(cluster: KubernetesCluster) -> list[OpResult]:
    current = _current(cluster)
    if cluster.coredns_mode == "k3s":
        return _add_k3s_override(cluster, current)
    wanted = add_block(current)
    return [] if wanted == current else _write(cluster, wanted)


def remove_rewrites(cluster: KubernetesCluster) -> list[OpResult]:
    if cluster.coredns_mode == "k3s":
        try:
            return _remove_k3s_override(cluster)
        except RuntimeError:
            return []
    try:
        current = _current(cluster)
    except RuntimeError:
        return []
    return _write(cluster, remove_block(current)) if has_block(current) else []
