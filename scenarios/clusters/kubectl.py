"""kubectl and osm/meshctl command lines: the one parser, and an emulator on the ``Cluster`` interface.

``parse`` reads the command lines the catalog and the article write (argparse; flags it does not
know are kept in ``unknown``). The Kubernetes backends use it to recognise ``kubectl apply -f
FILE`` (so local files get their images substituted) and hand every other line to kubectl.
``KubectlEmulator`` answers those lines on a backend without kubectl (Docker) through the public
``Cluster`` methods: apply, delete, patch, get_object, list_pods, exec_pod, pod_logs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mesh.api.load import LoadError, load_text, read_text
from mesh.api.resources import INJECTION_ANNOTATION as INJECTION
from mesh.api.resources import MONITORED_BY_LABEL as MONITORED_BY
from scenarios.clusters.base import Cluster, OpResult, Unsupported, join
from scenarios.names import MANIFESTS_DIR as MANIFESTS

#: the article's remote manifests, answered with our local copies (no internet needed)
ARTICLE_URLS = {
    "samples/curl/curl.yaml": MANIFESTS / "curl.yaml",
    "egress/egress-gateway.yaml": MANIFESTS / "egress-gateway.yaml",
}


@dataclass
class Command:
    """One parsed command line: ``program verb names... [flags] [-- command...]``."""

    program: str
    verb: str
    names: list[str] = field(default_factory=list)
    namespace: str | None = None
    filename: str | None = None
    container: str | None = None
    selector: str | None = None
    output: str | None = None
    patch: str | None = None
    patch_type: str | None = None
    mesh_name: str | None = None
    overwrite: bool = False
    disable_injection: bool = False
    #: what follows ``--`` (kubectl exec)
    command: list[str] = field(default_factory=list)
    #: flags the parser does not know (kubectl takes many more)
    unknown: list[str] = field(default_factory=list)

    @property
    def target(self) -> tuple[str, str | None]:
        """(KIND, NAME) of ``KIND NAME`` or ``KIND/NAME``."""
        names = self.names
        if names and "/" in names[0]:
            names = [*names[0].split("/", 1), *names[1:]]
        return (names[0] if names else "", names[1] if len(names) > 1 else None)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit
        raise Unsupported(f"cannot read the command line: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(add_help=False, allow_abbrev=False)
    parser.add_argument("verb")
    parser.add_argument("names", nargs="*")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("-f", "--filename")
    parser.add_argument("-c", "--container")
    parser.add_argument("-l", "--selector")
    parser.add_argument("-o", "--output")
    parser.add_argument("-p", "--patch")
    parser.add_argument("--type", dest="patch_type")
    parser.add_argument("--mesh-name")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--disable-sidecar-injection", dest="disable_injection", action="store_true")
    return parser


_PARSER = _parser()


def parse(argv: Sequence[str]) -> Command:
    """``kubectl ...``, ``osm ...`` or ``meshctl ...`` as a ``Command``; Unsupported when it is none."""
    argv = list(argv)
    if len(argv) < 2 or argv[0] not in ("kubectl", "osm", "meshctl"):
        raise Unsupported(f"not a kubectl or osm/meshctl command line: {join(argv)!r}")
    head, command = (
        (argv[1 : argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv[1:], [])
    )
    known, unknown = _PARSER.parse_known_intermixed_args(head)
    return Command(program=argv[0], command=command, unknown=unknown, **vars(known))


def apply_target(argv: Sequence[str]) -> tuple[str, str | None] | None:
    """For ``kubectl apply|create [-n NS] -f FILE`` with a local FILE and no other flag: (FILE, NS)."""
    try:
        cmd = parse(argv)
    except Unsupported:
        return None
    if cmd.program != "kubectl" or cmd.verb not in ("apply", "create") or cmd.names or cmd.unknown:
        return None
    filename = cmd.filename
    if not filename or filename == "-" or "://" in filename or not Path(filename).is_file():
        return None
    return filename, cmd.namespace


def read_manifest(filename: str) -> str:
    """A local file, or one of the article's URLs answered from our copy (there is no internet)."""
    if "://" in filename:
        for suffix, local in ARTICLE_URLS.items():
            if filename.endswith(suffix):
                return local.read_text()
        raise Unsupported(f"the docker backend has no internet: cannot fetch {filename}")
    return read_text(filename)  # bounded; LoadError naming the file


class KubectlEmulator:
    """``cluster.run(argv)`` for a backend without kubectl."""

    def __init__(self, cluster: Cluster, mesh_name: str = "osm") -> None:
        self.cluster = cluster
        self.mesh_name = mesh_name

    def run(self, argv: Sequence[str]) -> OpResult:
        line = join(argv)
        try:
            cmd = parse(argv)
        except Unsupported as exc:
            raise Unsupported(f"the docker backend does not interpret {line!r} ({exc})") from None
        if cmd.program in ("osm", "meshctl"):
            if cmd.verb == "namespace" and cmd.names[:1] in (["add"], ["remove"]) and len(cmd.names) > 1:
                return self._mesh_namespace(cmd, line)
            raise Unsupported(f"the docker backend does not interpret {line!r}")
        handler = {
            "apply": self._apply,
            "create": self._create,
            "delete": self._delete,
            "patch": self._patch,
            "annotate": self._metadata,
            "label": self._metadata,
            "get": self._get,
            "exec": self._exec,
            "logs": self._logs,
        }.get(cmd.verb)
        if handler is None:
            raise Unsupported(f"the docker backend does not interpret {line!r}")
        return handler(cmd, line)

    def _apply(self, cmd: Command, line: str) -> OpResult:
        if not cmd.filename:
            raise Unsupported(f"the docker backend needs -f FILE in {line!r}")
        try:  # bounded, so a hostile file is one line naming it (the backend parses the text again)
            text = read_manifest(cmd.filename)
            load_text(text, cmd.filename)
        except LoadError as exc:
            return OpResult(line, 1, stderr=f"error: {exc}")
        return self.cluster.apply(text, cmd.namespace)

    def _create(self, cmd: Command, line: str) -> OpResult:
        kind, name = cmd.target
        if cmd.filename or kind not in ("namespace", "ns") or not name:
            return self._apply(cmd, line)
        if self.cluster.get_object("Namespace", name) is not None:
            return OpResult(
                line, 1, stderr=f'Error from server (AlreadyExists): namespaces "{name}" already exists'
            )
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        return self.cluster.apply(yaml.safe_dump(manifest))

    def _delete(self, cmd: Command, line: str) -> OpResult:
        kind, name = cmd.target
        if not name:
            raise Unsupported(f"the docker backend needs `kubectl delete KIND NAME`, got {line!r}")
        return self.cluster.delete(kind, name, cmd.namespace)

    def _patch(self, cmd: Command, line: str) -> OpResult:
        kind, name = cmd.target
        if not name or cmd.patch is None:
            raise Unsupported(f"the docker backend needs `kubectl patch KIND NAME -p PATCH`, got {line!r}")
        try:
            body = json.loads(cmd.patch)
        except json.JSONDecodeError:
            try:
                body = yaml.safe_load(cmd.patch)
            except yaml.YAMLError as exc:
                return OpResult(line, 1, stderr=f"error: the patch is not JSON or YAML: {exc}")
        return self.cluster.patch(kind, name, cmd.namespace, body, cmd.patch_type or "strategic")

    def _metadata(self, cmd: Command, line: str) -> OpResult:
        pairs = [n for n in cmd.names if "=" in n or n.endswith("-")]
        kind, name = Command(cmd.program, cmd.verb, [n for n in cmd.names if n not in pairs]).target
        if not name or not pairs:
            raise Unsupported(
                f"the docker backend needs `kubectl {cmd.verb} KIND NAME KEY=VALUE`, got {line!r}"
            )
        current = self.cluster.get_object(kind, name, cmd.namespace)
        if current is None:
            return OpResult(line, 1, stderr=f'Error from server (NotFound): "{name}" not found')
        field_name = "annotations" if cmd.verb == "annotate" else "labels"
        values = dict(current["metadata"].get(field_name) or {})
        changes: dict[str, str | None] = {}
        for pair in pairs:
            if pair.endswith("-") and "=" not in pair:
                changes[pair[:-1]] = None
                continue
            key, value = pair.split("=", 1)
            if key in values and values[key] != value and not cmd.overwrite:
                return OpResult(
                    line, 1, stderr=f"error: {key!r} already has a value ({values[key]}); use --overwrite"
                )
            changes[key] = value
        result = self.cluster.patch(kind, name, cmd.namespace, {"metadata": {field_name: changes}})
        done = "annotated" if cmd.verb == "annotate" else "labeled"
        stdout = f"{current['kind'].lower()}/{name} {done}" if result.ok else result.stdout
        return OpResult(result.command, result.exit_code, stdout, result.stderr)

    def _mesh_namespace(self, cmd: Command, line: str) -> OpResult:
        action, names = cmd.names[0], cmd.names[1:]
        mesh_name = cmd.mesh_name or self.mesh_name
        commands, output = [], []
        for name in names:
            current = self.cluster.get_object("Namespace", name)
            if current is None:
                return OpResult(line, 1, stderr=f'Error: namespace "{name}" not found')
            annotations = current["metadata"].get("annotations") or {}
            if action == "add":
                injection = "disabled" if cmd.disable_injection else annotations.get(INJECTION, "enabled")
                change = {"labels": {MONITORED_BY: mesh_name}, "annotations": {INJECTION: injection}}
                output.append(f"Namespace [{name}] successfully added to mesh [{mesh_name}]")
            else:
                change = {"labels": {MONITORED_BY: None}, "annotations": {INJECTION: None}}
                output.append(f"Namespace [{name}] successfully removed from mesh [{mesh_name}]")
            result = self.cluster.patch("Namespace", name, None, {"metadata": change})
            if not result.ok:
                return result
            commands.append(result.command)
        return OpResult("\n".join(commands), 0, "\n".join(output))

    def _get(self, cmd: Command, line: str) -> OpResult:
        kind, name = cmd.target
        if kind not in ("pod", "pods", "po"):
            raise Unsupported(f"the docker backend only answers `kubectl get pod`, got {line!r}")
        pods = self.cluster.list_pods(cmd.namespace or "default", cmd.selector or "")
        if name:
            pods = [p for p in pods if p.name == name]
        output = cmd.output or ""
        if output.startswith("jsonpath") and "podIP" in output:
            text = " ".join(p.ip for p in pods)
        elif output.startswith("jsonpath"):
            text = " ".join(p.name for p in pods)
        elif output == "name":
            text = " ".join(f"pod/{p.name}" for p in pods)
        else:
            lines = ["NAME\tREADY\tSTATUS\tIP"]
            lines += [f"{p.name}\t{p.containers}/{p.containers}\t{p.status}\t{p.ip}" for p in pods]
            text = "\n".join(lines)
        return OpResult(line, 0, text)

    def _exec(self, cmd: Command, line: str) -> OpResult:
        if not cmd.command:
            raise Unsupported(
                f"the docker backend needs `kubectl exec POD -n NS -c C -- COMMAND`, got {line!r}"
            )
        if not cmd.names:
            raise Unsupported(f"the docker backend needs a pod name in {line!r}")
        return self.cluster.exec_pod(cmd.namespace or "default", cmd.names[0], cmd.container, cmd.command)

    def _logs(self, cmd: Command, line: str) -> OpResult:
        if not cmd.names:
            return OpResult(line, 1, stderr="error: pod not found")
        return self.cluster.pod_logs(cmd.namespace or "default", cmd.names[0], cmd.container)
