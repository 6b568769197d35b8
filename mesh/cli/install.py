"""meshctl install and uninstall: apply the rendered manifests and wait for the controller."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from mesh.api.load import dump_all
from mesh.api.validation import describe
from mesh.manifests.install import (
    CONTROLLER_NAME,
    InstallOptions,
    apply_sets,
    render_install,
    render_uninstall,
)
from mesh.manifests.kube import KubeApi, NotServed

from .common import ApiFactory, CliError, say


def _install_options(args: argparse.Namespace) -> InstallOptions:
    options, notices = apply_sets(
        InstallOptions(mesh_name=args.mesh_name, namespace=args.osm_namespace), args.set or []
    )
    for notice in notices:
        print(f"note: {notice}", file=sys.stderr, flush=True)
    return options


def wait_for(check: Callable[[], str | None], what: str, timeout: float, interval: float = 1.0) -> None:
    """Poll ``check`` (None: done, else a status line) until done, reporting changes; CliError on timeout."""
    last: list[str | None] = [None]

    def probe() -> str | None:
        status = check()
        if status is not None and status != last[0]:
            say(f"  waiting for {what}: {status}")
        last[0] = status
        return status

    final = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda status: status is not None),
        retry_error_callback=lambda state: state.outcome.result(),
    )(probe)
    if final is not None:
        raise CliError(f"{what} not ready after {timeout:g} s: {final}")


def _crd_pending(api: KubeApi, name: str) -> str | None:
    crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
        return None
    return "not established yet"


def _rollout_pending(deployment: dict[str, Any]) -> str | None:
    """What ``kubectl rollout status`` would still wait for, or None when the rollout is complete."""
    status = deployment.get("status") or {}
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    generation = (deployment.get("metadata") or {}).get("generation")
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return "waiting for the new spec to be observed"
    updated = status.get("updatedReplicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < wanted:
        return f"{updated}/{wanted} replicas updated"
    if (status.get("replicas") or 0) > updated:
        return f"{status['replicas'] - updated} old replica(s) pending termination"
    if available < wanted:
        return f"{available}/{wanted} replicas ready"
    return None


def _controller_pending(api: KubeApi, namespace: str) -> str | None:
    deployment = api.get("apps/v1", "Deployment", CONTROLLER_NAME, namespace)
    if deployment is None:
        return "deployment not found"
    pending = _rollout_pending(deployment)
    if pending is None:
        return None
    reasons = []
    for pod in api.list("v1", "Pod", namespace, label_selector=f"app={CONTROLLER_NAME}"):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                reasons.append(
                    f"{pod['metadata']['name']}: {waiting['reason']} {waiting.get('message', '')}".strip()
                )
    return pending + (f" ({'; '.join(reasons)})" if reasons else "")


def _apply(api: KubeApi, obj: dict[str, Any], timeout: float) -> str:
    """Apply; a kind whose CRD was just established may take a moment to show up in discovery."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(1),
        retry=retry_if_exception_type(NotServed),
        reraise=True,
    )
    return retrying(api.apply, obj)


def cmd_install(args: argparse.Namespace, connect: ApiFactory) -> int:
    options = _install_options(args)
    objects = render_install(options)
    if args.dry_run:
        sys.stdout.write(dump_all(objects))
        return 0
    api = connect(args)
    where = f"namespace [{options.namespace}] (Kubernetes {api.server_version()})"
    say(f"Installing mesh [{options.mesh_name}] in {where}")
    crd_names = [o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"]
    for obj in objects:
        if obj["kind"] == "MeshConfig" and crd_names:  # its kind must be served before it can be applied
            for name in crd_names:
                wait_for(lambda n=name: _crd_pending(api, n), f"CRD {name}", args.timeout or 60, 0.5)
        outcome = _apply(api, obj, args.timeout or 60)
        say(f"  {describe(obj)} {outcome}")
    if args.timeout:
        wait_for(
            lambda: _controller_pending(api, options.namespace),
            f"{options.namespace}/{CONTROLLER_NAME}",
            args.timeout,
        )
    mode = "permissive" if options.enable_egress else "off (policy mode)"
    say(f"Mesh [{options.mesh_name}] installed; egress is {mode}")
    return 0


def cmd_uninstall(args: argparse.Namespace, connect: ApiFactory) -> int:
    options = InstallOptions(mesh_name=args.mesh_name, namespace=args.osm_namespace)
    objects = render_uninstall(options, delete_crds=args.delete_crds, delete_namespace=args.delete_namespace)
    if args.dry_run:
        for obj in objects:
            say(f"would delete {describe(obj)}")
        say(f"would delete every NetworkPolicy labelled {_boundary_selector(options.mesh_name)}")
        return 0
    api = connect(args)
    for obj in objects:
        meta = obj["metadata"]
        deleted = api.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        say(f"  {describe(obj)} {'deleted' if deleted else 'not found'}")
    _delete_boundary_policies(api, options.mesh_name)
    say(f"Mesh [{options.mesh_name}] uninstalled from namespace [{options.namespace}]")
    return 0


def _boundary_selector(mesh_name: str) -> str:
    from mesh.controller.boundary import BOUNDARY_LABEL

    return f"{BOUNDARY_LABEL}={mesh_name}"


def _delete_boundary_policies(api: KubeApi, mesh_name: str) -> None:
    """The egress boundary's NetworkPolicies (docs/boundary.md), after the controller that keeps them:
    left behind, they would keep the meshed namespaces shut with no gateway config to follow."""
    from mesh.controller.boundary import NETWORK_POLICY_API

    try:
        policies = api.list(NETWORK_POLICY_API, "NetworkPolicy", label_selector=_boundary_selector(mesh_name))
    except NotServed:  # a cluster without the networking API has none
        return
    for policy in policies:
        meta = policy["metadata"]
        deleted = api.delete(NETWORK_POLICY_API, "NetworkPolicy", meta["name"], meta["namespace"])
        say(f"  NetworkPolicy {meta['namespace']}/{meta['name']} {'deleted' if deleted else 'not found'}")
