"""kubectl and meshctl command lines, as argument lists to run and as the article writes them.

Pure functions (tested without a cluster). The ``*_display`` forms are what the demo, the runner's
reports and ``OpResult.command`` show: the article's ``kubectl exec "$(kubectl get pod -n curl -l
app=curl -o jsonpath='{.items..metadata.name}')" -n curl -c curl -- curl -sI ...``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence

from mesh.api.resources import DEFAULT_MESHCONFIG_NAME
from scenarios.clusters.base import MeshOptions, join

#: custom resources removed by reset() in every namespace
POLICY_RESOURCES = ("egresses.policy.openservicemesh.io", "egressgateways.policy.openservicemesh.io")


def pod_name_lookup(namespace: str, selector: str) -> str:
    """The article's ``$(kubectl get pod ...)`` sub-command that finds the pod by label."""
    return f"\"$(kubectl get pod -n {namespace} -l {selector} -o jsonpath='{{.items..metadata.name}}')\""


def exec_display(namespace: str, selector: str, container: str, argv: Sequence[str]) -> str:
    """``kubectl exec "$(kubectl get pod -n curl -l app=curl -o jsonpath=...)" -n curl -c curl -- ...``"""
    return (
        f"kubectl exec {pod_name_lookup(namespace, selector)} -n {namespace} -c {container} -- {join(argv)}"
    )


def exec_argv(pod: str, namespace: str, container: str, argv: Sequence[str]) -> list[str]:
    return ["kubectl", "exec", pod, "-n", namespace, "-c", container, "--", *argv]


def logs_display(namespace: str, selector: str, container: str | None = None) -> str:
    command = f"kubectl logs -n {namespace} {pod_name_lookup(namespace, selector)}"
    return f"{command} -c {container}" if container else command


def logs_argv(pod: str, namespace: str, container: str | None = None, tail: int | None = None) -> list[str]:
    argv = ["kubectl", "logs", "-n", namespace, pod]
    if container:
        argv += ["-c", container]
    if tail is not None:
        argv.append(f"--tail={tail}")
    return argv


def apply_argv(namespace: str | None = None) -> list[str]:
    return ["kubectl", "apply", *(["-n", namespace] if namespace else []), "-f", "-"]


def apply_display(manifest: str, namespace: str | None = None) -> str:
    """``kubectl apply -f - <<EOF ... EOF`` exactly as the article writes it."""
    body = manifest if manifest.endswith("\n") else manifest + "\n"
    return f"{join(apply_argv(namespace))} <<EOF\n{body}EOF"


def delete_argv(kind: str, name: str, namespace: str | None = None) -> list[str]:
    return ["kubectl", "delete", kind, name, *(["-n", namespace] if namespace else [])]


def patch_argv(
    kind: str, name: str, namespace: str | None, patch: Mapping, patch_type: str = "merge"
) -> list[str]:
    body = json.dumps(patch, separators=(",", ":"))
    ns = ["-n", namespace] if namespace else []
    return ["kubectl", "patch", kind, name, *ns, "-p", body, f"--type={patch_type}"]


def reset_argvs(
    namespaces: Sequence[str], mesh_namespace: str, meshconfig_spec: dict | None
) -> list[list[str]]:
    """What ``reset()`` runs: policies gone everywhere, sample namespaces gone (their pods
    force-deleted first so that is quick), MeshConfig spec back to the install's."""
    argvs = [
        ["kubectl", "delete", resource, "--all", "--all-namespaces", "--ignore-not-found", "--wait=false"]
        for resource in POLICY_RESOURCES
    ]
    for ns in namespaces:
        argvs.append(
            ["kubectl", "delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", "--wait=false"]
        )
    if namespaces:
        argvs.append(["kubectl", "delete", "namespace", *namespaces, "--ignore-not-found", "--timeout=180s"])
    if meshconfig_spec is not None:
        argvs.append(
            patch_argv("meshconfig", DEFAULT_MESHCONFIG_NAME, mesh_namespace, {"spec": meshconfig_spec})
        )
    return argvs


def get_pods_argv(namespace: str, selector: str | None) -> list[str]:
    return ["kubectl", "get", "pods", "-n", namespace, *(["-l", selector] if selector else []), "-o", "json"]


def wait_display(namespace: str, selector: str, timeout: float) -> str:
    target = ["-l", selector] if selector else ["--all"]
    return join(
        [
            "kubectl",
            "wait",
            "--for=condition=Ready",
            "pod",
            *target,
            "-n",
            namespace,
            f"--timeout={int(timeout)}s",
        ]
    )


def meshctl_base() -> list[str]:
    """``meshctl`` from PATH, else the same program through this interpreter."""
    return ["meshctl"] if shutil.which("meshctl") else [sys.executable, "-m", "mesh.cli"]


def install_argv(
    options: MeshOptions, registry: str, tag: str, pull_policy: str, base: Sequence[str] = ("meshctl",)
) -> list[str]:
    """The article's ``osm install`` options plus where the images are."""
    argv = [
        *base,
        "install",
        "--mesh-name",
        options.mesh_name,
        "--osm-namespace",
        options.mesh_namespace,
        f"--set=osm.enableEgress={str(options.enable_egress).lower()}",
        f"--set=osm.image.registry={registry}",
        f"--set=osm.image.tag={tag}",
        f"--set=osm.image.pullPolicy={pull_policy}",
    ]
    argv += [f"--set={key}={value}" for key, value in options.extra_set.items()]
    return argv


def uninstall_argv(options: MeshOptions, base: Sequence[str] = ("meshctl",)) -> list[str]:
    return [
        *base,
        "uninstall",
        "--mesh-name",
        options.mesh_name,
        "--osm-namespace",
        options.mesh_namespace,
        "--delete-crds",
    ]


def map_osm_argv(argv: Sequence[str], base: Sequence[str] = ("meshctl",)) -> list[str]:
    """``osm namespace add curl`` -> ``meshctl namespace add curl`` (same program, article name)."""
    return [*base, *argv[1:]]
