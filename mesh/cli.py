"""meshctl (also installed as ``osm``): install the mesh, add namespaces, inject, validate, status.

The article's commands work with either name, e.g.::

    osm install --mesh-name osm --osm-namespace osm-system \\
        --set=osm.enableEgress=false --set=osm.image.pullPolicy=Always
    osm namespace add curl
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from mesh.api import crds
from mesh.api.lists import parse_cidrs, parse_ports
from mesh.api.load import Document, LoadError, dump_all, load_paths
from mesh.api.resources import (
    DEFAULT_MESH_NAME,
    DEFAULT_MESH_NAMESPACE,
    DEFAULT_MESHCONFIG_NAME,
    INJECTION_ANNOTATION,
    MESHCONFIG_API,
    MONITORED_BY_LABEL,
    POLICY_API,
    Namespace,
)
from mesh.api.validation import Problem, describe, field_path, is_mesh_kind, validate_objects
from mesh.manifests.install import (
    CONTROLLER_NAME,
    PULL_POLICIES,
    InstallOptions,
    OptionError,
    apply_sets,
    render_install,
    render_uninstall,
)
from mesh.manifests.kube import ClusterUnreachable, KubeApi, KubeError, Kubernetes, NotServed

ApiFactory = Callable[[argparse.Namespace], KubeApi]


class CliError(RuntimeError):
    """A user-facing failure: printed as ``error: ...`` with exit code 1."""


def say(text: str = "") -> None:
    print(text, flush=True)


def version() -> str:
    try:
        return metadata.version("egress-mesh")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


# --- install / uninstall ----------------------------------------------------------------------------


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


# --- namespaces -------------------------------------------------------------------------------------


def _namespace(api: KubeApi, name: str) -> dict[str, Any]:
    found = api.get("v1", "Namespace", name)
    if found is None:
        raise CliError(f"namespace {name} not found (create it first: kubectl create namespace {name})")
    return found


def cmd_namespace_add(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    for name in args.namespaces:
        labels = (_namespace(api, name).get("metadata") or {}).get("labels") or {}
        current = labels.get(MONITORED_BY_LABEL)
        if current and current != args.mesh_name:
            raise CliError(
                f"namespace {name} already belongs to mesh [{current}]; remove it from there first"
            )
        injection = "disabled" if args.disable_sidecar_injection else "enabled"
        patch = {
            "metadata": {
                "labels": {MONITORED_BY_LABEL: args.mesh_name},
                "annotations": {INJECTION_ANNOTATION: injection},
            }
        }
        api.patch_merge("v1", "Namespace", name, patch)
        extra = " (sidecar injection disabled)" if args.disable_sidecar_injection else ""
        say(f"Namespace [{name}] successfully added to mesh [{args.mesh_name}]{extra}")
    return 0


def cmd_namespace_remove(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    for name in args.namespaces:
        labels = (_namespace(api, name).get("metadata") or {}).get("labels") or {}
        current = labels.get(MONITORED_BY_LABEL)
        if current != args.mesh_name:
            where = f"mesh [{current}]" if current else "no mesh"
            raise CliError(f"namespace {name} belongs to {where}, not to mesh [{args.mesh_name}]")
        patch = {
            "metadata": {"labels": {MONITORED_BY_LABEL: None}, "annotations": {INJECTION_ANNOTATION: None}}
        }
        api.patch_merge("v1", "Namespace", name, patch)
        say(f"Namespace [{name}] successfully removed from mesh [{args.mesh_name}]")
    return 0


def _monitored(api: KubeApi, mesh_name: str) -> list[dict[str, Any]]:
    return api.list("v1", "Namespace", label_selector=f"{MONITORED_BY_LABEL}={mesh_name}")


def _injection(ns: dict[str, Any]) -> str:
    value = ((ns.get("metadata") or {}).get("annotations") or {}).get(INJECTION_ANNOTATION, "enabled")
    return "disabled" if str(value).lower() in ("disabled", "false", "no", "off") else "enabled"


def cmd_namespace_list(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    namespaces = _monitored(api, args.mesh_name)
    if not namespaces:
        say(f"No namespaces in mesh [{args.mesh_name}]")
        return 0
    say(f"{'NAMESPACE':<30} {'MESH':<12} SIDECAR-INJECTION")
    for ns in sorted(namespaces, key=lambda n: n["metadata"]["name"]):
        say(f"{ns['metadata']['name']:<30} {args.mesh_name:<12} {_injection(ns)}")
    return 0


# --- inject / validate ------------------------------------------------------------------------------


def cmd_inject(args: argparse.Namespace, connect: ApiFactory) -> int:
    try:
        from mesh.controller import injector
    except ImportError as exc:
        raise CliError(f"sidecar injection is not available in this installation ({exc})") from None
    from mesh.api.proxyconfig import Exclusions

    proxy_image = args.proxy_image or injector.InjectionSettings().proxy_image
    settings = injector.InjectionSettings(
        proxy_image=proxy_image,
        init_image=args.init_image or proxy_image,
        controller_url=args.controller_url or injector.default_controller_url(args.osm_namespace),
        mesh_name=args.mesh_name,
        mesh_namespace=args.osm_namespace,
        exclusions=Exclusions(ip_ranges=tuple(args.exclude_ip_ranges), ports=tuple(args.exclude_ports)),
        image_pull_policy=args.image_pull_policy,
    )
    out = []
    for doc in load_paths(args.filename):
        try:
            out.append(injector.inject_workload(doc.obj, settings))
        except injector.InjectionError as exc:
            raise CliError(f"{doc.source}: {describe(doc.obj)}: {exc}") from None
    sys.stdout.write(dump_all(out))
    return 0


def cmd_validate(args: argparse.Namespace, connect: ApiFactory) -> int:
    documents = load_paths(args.filename)
    problems = validate_objects(documents).problems
    if args.kubernetes_version:
        problems += _kubernetes_problems(documents, args.kubernetes_version, {p.source for p in problems})
    for problem in problems:
        print(problem, file=sys.stderr)
    for warning in _setuid_warnings(documents, args.mesh_name, args.osm_namespace):
        print(f"warning: {warning}", file=sys.stderr)
    mesh_kinds = {kind for _, kind in crds.KINDS}
    mesh_objects = sum(1 for d in documents if isinstance(d.obj, dict) and d.obj.get("kind") in mesh_kinds)
    if problems:
        print(f"{len(problems)} problem(s) in {len(documents)} object(s)", file=sys.stderr)
        return 1
    checked = f"{mesh_objects} mesh object(s) checked against the CRD schemas"
    if args.kubernetes_version:
        checked += f", the others against Kubernetes {args.kubernetes_version}"
    say(f"{len(documents)} object(s) valid ({checked})")
    return 0


def _setuid_warnings(documents: list[Document], mesh_name: str, mesh_namespace: str) -> list[str]:
    """Pods (and workloads' pod templates) in a namespace of the mesh whose containers keep
    CAP_SETUID/CAP_SETGID while the egress boundary is on, as far as the files tell: their MeshConfig
    and Namespaces. Such a container can run as the sidecar's UID and tunnel past the policy through
    the gateway (docs/boundary.md)."""
    from mesh.controller import injector

    objects = [d.obj for d in documents if isinstance(d.obj, dict)]
    meshconfig = next(
        (
            o
            for o in objects
            if o.get("kind") == "MeshConfig"
            and (o.get("metadata") or {}).get("name") == DEFAULT_MESHCONFIG_NAME
            and (o.get("metadata") or {}).get("namespace", mesh_namespace) == mesh_namespace
        ),
        None,
    )
    traffic = ((meshconfig or {}).get("spec") or {}).get("traffic") or {}
    if traffic.get("enableEgressBoundary") is not True:
        return []
    namespaces = {
        ns.name: ns
        for ns in (Namespace.from_object(o) for o in objects if o.get("kind") == "Namespace")
        if ns.labels.get(MONITORED_BY_LABEL) == mesh_name
    }
    warnings = []
    for obj in objects:
        template = injector.pod_template(obj)
        meta = obj.get("metadata") or {}
        namespace = namespaces.get(meta.get("namespace") or "default")
        if template is None or namespace is None or namespace.name == mesh_namespace:
            continue
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        spec = template.get("spec") or {}
        as_created = {  # the pod as the webhook sees it: without a sidecar, UID 1500 bypasses nothing
            "metadata": {"annotations": {**annotations, injector.INJECTED_ANNOTATION: "false"}},
            "spec": {"hostNetwork": spec.get("hostNetwork")},
        }
        if injector.injection_skip_reason(as_created, namespace):
            continue
        try:
            if injector.drop_setuid_requested(annotations, namespace):
                continue
        except injector.InjectionError:
            pass  # the webhook refuses it; keep warning about what it asks for
        kept = [
            str(c.get("name"))
            for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
            if c.get("name") not in (injector.INIT_CONTAINER, injector.SIDECAR_CONTAINER)
            and injector.keeps_setuid(c)
        ]
        if kept:
            warnings.append(
                f"{describe(obj)}: container(s) {', '.join(kept)} keep CAP_SETUID/CAP_SETGID in namespace "
                f"{namespace.name} while the egress boundary is on: as UID 1500 they bypass the sidecar "
                f'(annotate the pod or namespace {injector.DROP_SETUID_ANNOTATION}: "true", or drop '
                "SETUID and SETGID in securityContext.capabilities)"
            )
    return warnings


def _kubernetes_problems(documents: list[Document], version: str, failed: set[str]) -> list[Problem]:
    """Built-in kinds against the Kubernetes JSON schemas of ``version`` (kubernetes-validate, strict)."""
    try:
        import kubernetes_validate
    except ImportError:
        raise CliError(
            "--kubernetes-version needs the kubernetes-validate package (pip install kubernetes-validate)"
        ) from None
    problems = []
    for doc in documents:
        if doc.source in failed or not isinstance(doc.obj, dict) or is_mesh_kind(doc.obj):
            continue
        try:
            kubernetes_validate.validate(doc.obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(
                Problem(describe(doc.obj), field_path(exc.absolute_path), exc.message, doc.source)
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(Problem(describe(doc.obj), "apiVersion", exc.message, doc.source))
        except (kubernetes_validate.utils.VersionNotSupportedError, IndexError):
            utils = kubernetes_validate.utils
            known = ", ".join(dict.fromkeys(utils.major_minor(v) for v in utils.all_versions()))
            raise CliError(
                f"--kubernetes-version {version}: not supported; known versions: {known}"
            ) from None
    return problems


# --- status / version -------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    ns = args.osm_namespace
    say(f"Mesh [{args.mesh_name}] in namespace [{ns}] (Kubernetes {api.server_version()})")
    try:
        pending = _controller_pending(api, ns)
        meshconfig = api.get(MESHCONFIG_API, "MeshConfig", DEFAULT_MESHCONFIG_NAME, ns)
        egresses = api.list(POLICY_API, "Egress")
        gateways = api.list(POLICY_API, "EgressGateway")
    except KubeError as exc:
        if isinstance(exc, ClusterUnreachable):
            raise
        say(f"  not installed: {exc}")
        return 1
    say(f"  controller:      {'ready' if pending is None else 'NOT READY: ' + pending}")
    if meshconfig is None:
        say(f"  egress:          MeshConfig {ns}/{DEFAULT_MESHCONFIG_NAME} not found")
    else:
        spec = meshconfig.get("spec") or {}
        enabled = bool((spec.get("traffic") or {}).get("enableEgress", False))
        mode = "permissive (enableEgress: true)" if enabled else "policy (enableEgress: false)"
        say(f"  egress:          {mode}")
    global_gateways = [describe(g) for g in gateways if (g.get("spec") or {}).get("global")]
    say(f"  Egress policies: {len(egresses)}")
    say(
        f"  EgressGateways:  {len(gateways)}"
        + (f" (global: {', '.join(global_gateways)})" if global_gateways else "")
    )
    namespaces = sorted(_monitored(api, args.mesh_name), key=lambda n: n["metadata"]["name"])
    listed = ", ".join(
        n["metadata"]["name"] + (" (injection disabled)" if _injection(n) == "disabled" else "")
        for n in namespaces
    )
    say(f"  namespaces:      {listed or 'none (add one: meshctl namespace add NAME)'}")
    objects = [o for o in [meshconfig, *egresses, *gateways] if o is not None]
    for obj in objects:  # what the API server adds is not part of the user's object
        for field in ("status",):
            obj.pop(field, None)
    problems = validate_objects(objects).problems
    for problem in problems:
        say(f"  invalid:         {problem}")
    return 0 if pending is None and not problems else 1


def cmd_version(args: argparse.Namespace, connect: ApiFactory) -> int:
    say(f"meshctl version {version()} (egress-mesh)")
    return 0


# --- parser -----------------------------------------------------------------------------------------


DESCRIPTIONS = {
    "install": (
        "Install the mesh: CRDs, RBAC, the osm-controller Deployment and Service, the sidecar-injection "
        "webhook and the MeshConfig osm-mesh-config, then wait for the controller to be ready."
    ),
    "uninstall": (
        "Remove the mesh's webhook, controller, RBAC and MeshConfig. Egress policies stay unless the CRDs "
        "are deleted too."
    ),
    "namespace": (
        "Pods in namespaces of the mesh get the sidecar injected (label openservicemesh.io/monitored-by)."
    ),
    "inject": (
        "Rewrite Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob manifests with the "
        "init container and the sidecar, for clusters without the injection webhook. Other objects pass "
        "through."
    ),
    "validate": (
        "Validate manifests without a cluster: mesh objects against the CRD schemas plus the rules a schema "
        "cannot express (host syntax, CIDRs, one global EgressGateway, gateway Services present when the "
        "files define Services). Exit 1 with one line per problem. Warns (exit 0) about pods that keep "
        "CAP_SETUID/CAP_SETGID in a namespace of the mesh when the files' MeshConfig turns the egress "
        "boundary on."
    ),
    "status": (
        "Show controller readiness, the egress mode, Egress/EgressGateway counts, the mesh's namespaces and "
        "any invalid mesh object. Exit 1 when the controller is not ready or an object is invalid."
    ),
}


def _mesh_flags(parser: argparse.ArgumentParser, namespace: bool = True) -> None:
    parser.add_argument(
        "--mesh-name",
        type=_dns_label,
        default=DEFAULT_MESH_NAME,
        help="name of the mesh (default: %(default)s)",
    )
    if namespace:
        parser.add_argument(
            "--osm-namespace",
            type=_dns_label,
            default=DEFAULT_MESH_NAMESPACE,
            help="namespace of the control plane (default: %(default)s)",
        )


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)"
    )
    parser.add_argument("--context", help="kubeconfig context to use")


def _filename_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        action="extend",
        nargs="+",
        required=True,
        metavar="FILE",
        help="manifest file or directory, - for standard input",
    )


def build_parser(prog: str = "meshctl") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Install and operate the egress-mesh service mesh."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    install = commands.add_parser(
        "install", help="install the control plane, CRDs and MeshConfig", description=DESCRIPTIONS["install"]
    )
    _mesh_flags(install)
    install.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="install option, Helm style (repeatable; see docs/meshctl.md)",
    )
    install.add_argument(
        "--dry-run", action="store_true", help="print the manifests instead of applying them"
    )
    install.add_argument(
        "--timeout",
        type=_seconds,
        default=180,
        help="seconds to wait for the controller; 0: do not wait (default: %(default)s)",
    )
    _cluster_flags(install)
    install.set_defaults(func=cmd_install)

    uninstall = commands.add_parser(
        "uninstall", help="remove the control plane", description=DESCRIPTIONS["uninstall"]
    )
    _mesh_flags(uninstall)
    uninstall.add_argument(
        "--delete-crds",
        action="store_true",
        help="also delete the CRDs and with them EVERY Egress, EgressGateway and MeshConfig",
    )
    uninstall.add_argument(
        "--delete-namespace", action="store_true", help="also delete the control-plane namespace"
    )
    uninstall.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    _cluster_flags(uninstall)
    uninstall.set_defaults(func=cmd_uninstall)

    namespace = commands.add_parser(
        "namespace", help="add namespaces to the mesh or remove them", description=DESCRIPTIONS["namespace"]
    )
    ns_commands = namespace.add_subparsers(dest="ns_command", metavar="COMMAND", required=True)
    ns_add = ns_commands.add_parser(
        "add", help="add namespaces to the mesh", description="Add namespaces to the mesh."
    )
    ns_add.add_argument("namespaces", nargs="+", metavar="NAMESPACE")
    _mesh_flags(ns_add, namespace=False)
    ns_add.add_argument(
        "--disable-sidecar-injection",
        action="store_true",
        help="monitor the namespace without injecting sidecars",
    )
    _cluster_flags(ns_add)
    ns_add.set_defaults(func=cmd_namespace_add)
    ns_remove = ns_commands.add_parser(
        "remove", help="remove namespaces from the mesh", description="Remove namespaces from the mesh."
    )
    ns_remove.add_argument("namespaces", nargs="+", metavar="NAMESPACE")
    _mesh_flags(ns_remove, namespace=False)
    _cluster_flags(ns_remove)
    ns_remove.set_defaults(func=cmd_namespace_remove)
    ns_list = ns_commands.add_parser(
        "list", help="list the namespaces of the mesh", description="List the namespaces of the mesh."
    )
    _mesh_flags(ns_list, namespace=False)
    _cluster_flags(ns_list)
    ns_list.set_defaults(func=cmd_namespace_list)

    inject = commands.add_parser(
        "inject",
        help="add the sidecar to workload manifests (no webhook needed)",
        description=DESCRIPTIONS["inject"],
    )
    _filename_flag(inject)
    _mesh_flags(inject)
    inject.add_argument("--proxy-image", help="sidecar image (default: egress-mesh/proxy:latest)")
    inject.add_argument("--init-image", help="init container image (default: the sidecar image)")
    inject.add_argument(
        "--image-pull-policy",
        choices=PULL_POLICIES,
        default="IfNotPresent",
        help="imagePullPolicy of the init container and the sidecar (default: %(default)s)",
    )
    inject.add_argument(
        "--controller-url",
        help="config server URL (default: http://osm-controller.<osm-namespace>.svc.cluster.local:15128)",
    )
    inject.add_argument(
        "--exclude-ip-ranges",
        type=_csv_cidrs,
        default=[],
        metavar="CIDR,...",
        help="outbound ranges never intercepted",
    )
    inject.add_argument(
        "--exclude-ports",
        type=_csv_ports,
        default=[],
        metavar="PORT,...",
        help="outbound ports never intercepted",
    )
    inject.set_defaults(func=cmd_inject)

    validate = commands.add_parser(
        "validate",
        help="check manifests offline against the CRD schemas and mesh rules",
        description=DESCRIPTIONS["validate"],
    )
    _filename_flag(validate)
    _mesh_flags(validate)
    validate.add_argument(
        "--kubernetes-version",
        metavar="X.Y",
        help="also check built-in kinds against the schemas of this Kubernetes version (kubernetes-validate)",
    )
    validate.set_defaults(func=cmd_validate)

    status = commands.add_parser(
        "status", help="show the state of the mesh", description=DESCRIPTIONS["status"]
    )
    _mesh_flags(status)
    _cluster_flags(status)
    status.set_defaults(func=cmd_status)

    version_cmd = commands.add_parser(
        "version", help="print the version", description="Print meshctl's version."
    )
    version_cmd.set_defaults(func=cmd_version)
    return parser


def _dns_label(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", text) or len(text) > 63:
        raise argparse.ArgumentTypeError(
            f"must be lower-case letters, digits and '-', starting and ending with a letter or digit, "
            f"at most 63 characters (got {text!r})"
        )
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _csv_cidrs(text: str) -> list[str]:
    try:
        return parse_cidrs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; expected ranges separated by commas") from None


def _csv_ports(text: str) -> list[int]:
    try:
        return parse_ports(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; expected port numbers separated by commas") from None


def connect(args: argparse.Namespace) -> KubeApi:
    return Kubernetes(kubeconfig=getattr(args, "kubeconfig", None), context=getattr(args, "context", None))


def main(argv: Sequence[str] | None = None, api_factory: ApiFactory | None = None) -> int:
    prog = os.path.basename(sys.argv[0]) if argv is None and sys.argv and sys.argv[0] else "meshctl"
    parser = build_parser(prog if prog in ("osm", "meshctl") else "meshctl")
    args = parser.parse_args(argv)
    try:
        return args.func(args, api_factory or connect)
    except (CliError, OptionError, LoadError, KubeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
