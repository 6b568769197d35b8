"""httpbin.org and httpstat.us inside the cluster: a CoreDNS ``rewrite name`` rule per stand-in.

The stand-ins run outside the mesh in namespace ``external-services`` (Services ``httpbin`` and
``httpstat``). The harness adds a marked block of rewrite rules to the ``coredns`` ConfigMap in
kube-system, restarts CoreDNS, and removes exactly that block afterwards. The Corefile edits are
pure functions: adding twice is adding once, and removing restores the original text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from scenarios.clusters.base import OpResult

if TYPE_CHECKING:
    from scenarios.clusters.kubernetes import KubernetesCluster

STANDIN_NAMESPACE = "external-services"
#: public name -> Service in STANDIN_NAMESPACE
STANDIN_HOSTS: dict[str, str] = {"httpbin.org": "httpbin", "httpstat.us": "httpstat"}
BEGIN = "# egress-mesh stand-ins: begin"
END = "# egress-mesh stand-ins: end"
CONFIGMAP, CONFIGMAP_NAMESPACE, COREFILE_KEY = "coredns", "kube-system", "Corefile"


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
    results.append(cluster._run(restart_argv()))
    results.append(cluster._run(rollout_status_argv()))
    if not results[-1].ok:
        raise RuntimeError(
            "CoreDNS did not come back after restart:\n" + cluster.diagnose("kube-system", "k8s-app=kube-dns")
        )
    return results


def add_rewrites(cluster: KubernetesCluster) -> list[OpResult]:
    current = _current(cluster)
    wanted = add_block(current)
    return [] if wanted == current else _write(cluster, wanted)


def remove_rewrites(cluster: KubernetesCluster) -> list[OpResult]:
    try:
        current = _current(cluster)
    except RuntimeError:
        return []
    return _write(cluster, remove_block(current)) if has_block(current) else []
