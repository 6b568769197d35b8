"""meshctl's command line: the commands, their options and the checks on option values."""

from __future__ import annotations

import argparse
import re

from mesh.api.lists import parse_cidrs, parse_ports
from mesh.api.resources import DEFAULT_MESH_NAME, DEFAULT_MESH_NAMESPACE
from mesh.manifests.install import PULL_POLICIES

from .common import version
from .inject import cmd_inject
from .install import cmd_install, cmd_uninstall
from .namespaces import cmd_namespace_add, cmd_namespace_list, cmd_namespace_remove
from .status import cmd_status, cmd_version
from .validate import cmd_validate

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
