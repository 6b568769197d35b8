"""Recording stand-ins for kind v0.33.0, k3d v5.9.0, k3s, kubectl, docker and meshctl, for PATH.

Each stand-in records its argv, then parses it the way the real program's command-line library
(cobra/pflag) does, against the subcommands and flags of the pinned release (taken from
kubernetes-sigs/kind v0.33.0 ``pkg/cmd/kind`` and k3d-io/k3d v5.9.0 ``cmd/``): an unknown
subcommand or flag, a missing flag value, a malformed duration or a bad number of arguments is
refused with exit 1 as the real program would. It then keeps a small state (clusters, their
kubeconfigs, the image refs loaded into each cluster's containerd, read from the archive's
``manifest.json`` as ``ctr images import`` does) and answers plausibly.

    bindir = install(tmp_path / "bin", tmp_path / "state")   # then PATH=bindir:$PATH
"""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("kind", "k3d", "k3s", "kubectl", "docker", "meshctl")

V, B, D, A = "value", "bool", "duration", "array"
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$")

KIND_NAME = {"--name": V, "-n": "--name"}
#: program -> subcommand path -> (flags, min positional, max positional); flags map to a kind
#: of value or to the long name they abbreviate
SPECS: dict[str, dict[tuple[str, ...], tuple[dict[str, str], int, int]]] = {
    "kind": {
        (): ({"--version": B}, 0, 0),  # cobra's flag for a root command with a Version
        ("version",): ({}, 0, 0),
        ("create", "cluster"): (
            {**KIND_NAME, "--config": V, "--image": V, "--retain": B, "--wait": D, "--kubeconfig": V},
            0,
            0,
        ),
        ("delete", "cluster"): ({**KIND_NAME, "--kubeconfig": V}, 0, 0),
        ("get", "clusters"): ({}, 0, 0),
        ("get", "kubeconfig"): ({**KIND_NAME, "--internal": B}, 0, 0),
        ("load", "image-archive"): ({**KIND_NAME, "--nodes": A}, 1, 99),
        ("load", "docker-image"): ({**KIND_NAME, "--nodes": A}, 1, 99),
    },
    "k3d": {
        (): ({"--version": B}, 0, 0),
        ("version",): ({"--output": V, "-o": "--output"}, 0, 0),
        ("cluster", "create"): (
            {
                "--image": V,
                "-i": "--image",
                "--k3s-arg": A,
                "--kubeconfig-update-default": B,
                "--kubeconfig-switch-context": B,
                "--wait": B,
                "--timeout": D,
                "--servers": V,
                "-s": "--servers",
                "--agents": V,
                "-a": "--agents",
                "--config": V,
                "-c": "--config",
                "--api-port": V,
                "--port": A,
                "-p": "--port",
                "--volume": A,
                "-v": "--volume",
                "--env": A,
                "-e": "--env",
                "--network": V,
                "--token": V,
                "--no-lb": B,
                "--no-rollback": B,
                "--registry-use": A,
                "--registry-create": V,
                "--registry-config": V,
                "--k3s-node-label": A,
                "--runtime-label": A,
                "--no-image-volume": B,
                "--subnet": V,
                "--host-alias": A,
            },
            0,
            1,
        ),  # fmt: skip
        ("cluster", "delete"): ({"--all": B, "-a": "--all", "--config": V, "-c": "--config"}, 0, 99),
        ("cluster", "list"): ({"--no-headers": B, "--token": B, "--output": V, "-o": "--output"}, 0, 99),
        ("kubeconfig", "get"): ({"--all": B, "-a": "--all"}, 1, 99),
        ("image", "import"): (
            {
                "--cluster": A,
                "-c": "--cluster",
                "--keep-tarball": B,
                "-k": "--keep-tarball",
                "--keep-tools": B,
                "-t": "--keep-tools",
                "--mode": V,
                "-m": "--mode",
            },
            1,
            99,
        ),  # fmt: skip
    },
}
GLOBAL = {"kind": {"--verbosity": V, "-v": "--verbosity", "--quiet": B, "-q": "--quiet"},
          "k3d": {"--verbose": B, "--trace": B, "--timestamps": B}}  # fmt: skip


class Refused(Exception):
    pass


def parse(program: str, args: list[str]) -> tuple[tuple[str, ...], dict[str, list[str]], list[str]]:
    """(subcommand, flags, positionals) as cobra would parse them, or Refused with its message."""
    command = next(
        (c for c in sorted(SPECS[program], key=len, reverse=True) if tuple(args[: len(c)]) == c), None
    )
    if command is None or (command == () and args and not args[0].startswith("-")):
        raise Refused(f'unknown command "{" ".join(args[:2])}" for "{program}"')
    spec, least, most = SPECS[program][command]
    spec = {**GLOBAL[program], **spec}
    flags: dict[str, list[str]] = {}
    positionals: list[str] = []
    rest = list(args[len(command) :])
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positionals += rest
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, eq, value = arg.partition("=")
        kind = spec.get(name)
        if kind in spec:  # a short flag: resolve to its long name
            name, kind = kind, spec[kind]
        if kind is None:
            raise Refused(
                f"unknown flag: {name}" if name.startswith("--") else f"unknown shorthand flag: {name}"
            )
        if kind == B:
            if eq and value not in ("true", "false", "1", "0", "t", "f", "TRUE", "FALSE"):
                raise Refused(f'invalid argument "{value}" for "{name}" flag: parse error')
            value = value if eq else "true"
        elif not eq:
            if not rest:
                raise Refused(f"flag needs an argument: {name}")
            value = rest.pop(0)
        if kind == D and not DURATION.match(value):
            raise Refused(f'invalid argument "{value}" for "{name}" flag: time: invalid duration "{value}"')
        flags.setdefault(name, []).append(value)
    if not least <= len(positionals) <= most:
        raise Refused(f"accepts between {least} and {most} arg(s), received {len(positionals)}")
    return command, flags, positionals


# ---- state ------------------------------------------------------------------------------------------
def _state() -> Path:
    return Path(os.environ["FAKE_STATE"])


def load() -> dict:
    path = _state() / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"kind": {}, "k3d": {}, "k3s": {"images": []}}


def save(state: dict) -> None:
    (_state() / "state.json").write_text(json.dumps(state, indent=1))


def kubeconfig(tool: str, name: str) -> str:
    return f"apiVersion: v1\nkind: Config\n# fake-cluster: {tool}/{name}\n"


def archive_refs(path: str) -> list[str]:
    """The RepoTags a ``docker save`` archive names (what ``ctr images import`` registers)."""
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    return [tag for entry in manifest for tag in entry.get("RepoTags") or []]


def normalized(ref: str) -> str:
    first, slash, _ = ref.partition("/")
    if not slash:
        return f"docker.io/library/{ref}"
    return ref if ("." in first or ":" in first) else f"docker.io/{ref}"


# ---- the programs ------------------------------------------------------------------------------------
def kind(args: list[str], state: dict) -> int:
    command, flags, positionals = parse("kind", args)
    name = flags.get("--name", ["kind"])[-1]
    clusters = state["kind"]
    if command == ():
        print(f"kind version {os.environ.get('FAKE_KIND_VERSION', 'v0.33.0')[1:]}")
    elif command == ("version",):
        print(f"kind {os.environ.get('FAKE_KIND_VERSION', 'v0.33.0')} go1.24.6 linux/amd64")
    elif command == ("create", "cluster"):
        if os.environ.get("FAKE_FAIL") == "create":
            print("ERROR: failed to create cluster: could not find a log line that matches", file=sys.stderr)
            return 1
        if name in clusters:
            message = f'node(s) already exist for a cluster with the name "{name}"'
            print(f"ERROR: failed to create cluster: {message}", file=sys.stderr)
            return 1
        clusters[name] = {"image": flags.get("--image", [""])[-1], "images": []}
        if "--kubeconfig" in flags:
            Path(flags["--kubeconfig"][-1]).write_text(kubeconfig("kind", name))
    elif command == ("delete", "cluster"):
        clusters.pop(name, None)
    elif command == ("get", "clusters"):
        if not clusters:
            print("No kind clusters found.", file=sys.stderr)
        for cluster in sorted(clusters):
            print(cluster)
    elif command == ("get", "kubeconfig"):
        if name not in clusters:
            print(
                f'ERROR: could not locate any control plane nodes for cluster named "{name}"', file=sys.stderr
            )
            return 1
        print(kubeconfig("kind", name), end="")
    elif command[0] == "load":
        if name not in clusters:
            print(f'ERROR: no nodes found for cluster "{name}"', file=sys.stderr)
            return 1
        for path in positionals:
            clusters[name]["images"] += archive_refs(path)
    return 0


def k3d(args: list[str], state: dict) -> int:
    command, flags, positionals = parse("k3d", args)
    clusters = state["k3d"]
    if command in ((), ("version",)):
        print("k3d version v5.9.0\nk3s version v1.33.4-k3s1 (default)")
    elif command == ("cluster", "create"):
        name = (positionals or ["k3s-default"])[0]
        if name in clusters:
            message = "because a cluster with that name already exists"
            print(f"FATA[0000] Failed to create cluster '{name}' {message}", file=sys.stderr)
            return 1
        clusters[name] = {"image": flags.get("--image", [""])[-1], "k3s-args": flags.get("--k3s-arg", []),
                          "images": []}  # fmt: skip
    elif command == ("cluster", "delete"):
        for name in positionals or ["k3s-default"]:
            clusters.pop(name, None)
    elif command == ("cluster", "list"):
        print(json.dumps([{"name": name, "serversCount": 1} for name in sorted(clusters)]))
    elif command == ("kubeconfig", "get"):
        for name in positionals:
            if name not in clusters:
                print(
                    f"FATA[0000] failed to get cluster '{name}': No nodes found for given cluster",
                    file=sys.stderr,
                )
                return 1
            print("---\n" + kubeconfig("k3d", name), end="")
    elif command == ("image", "import"):
        for name in flags.get("--cluster", ["k3s-default"]):
            for path in positionals:
                clusters[name]["images"] += archive_refs(path)
    return 0


def k3s(args: list[str], state: dict) -> int:
    if args[:1] == ["--version"]:
        print("k3s version v1.36.4+k3s1 (0123abcd)\ngo version go1.24.6")
        return 0
    if os.environ.get("FAKE_FAIL") == "k3s":
        print("ctr: failed to dial containerd: permission denied", file=sys.stderr)
        return 1
    if args[:3] != ["ctr", "-n", "k8s.io"]:
        print(f"unexpected: k3s {' '.join(args)}", file=sys.stderr)
        return 1
    if args[3:5] == ["images", "import"] and len(args) == 6:
        state["k3s"]["images"] += archive_refs(args[5])
    elif args[3:] == ["images", "ls", "-q"]:
        print("\n".join(normalized(r) for r in state["k3s"]["images"]))
    else:
        print(f"unexpected: k3s {' '.join(args)}", file=sys.stderr)
        return 1
    return 0


def docker(args: list[str], state: dict) -> int:
    """``docker exec NODE ctr [-n k8s.io | --namespace=k8s.io] images ls -q`` in a node."""
    if args[:1] != ["exec"] or len(args) < 3:
        return 0
    node, argv = args[1], args[2:]
    if (
        argv[0] != "ctr"
        or argv[-3:] != ["images", "ls", "-q"]
        or argv[1:-3] not in (["-n", "k8s.io"], ["--namespace=k8s.io"])
    ):
        print(f"unexpected: docker exec {node} {' '.join(argv)}", file=sys.stderr)
        return 1  # fmt: skip
    for tool, pattern in (("kind", r"^(.+)-control-plane$"), ("k3d", r"^k3d-(.+)-server-0$")):
        match = re.match(pattern, node)
        if match and match.group(1) in state[tool]:
            print("\n".join(normalized(r) for r in state[tool][match.group(1)]["images"]))
            return 0
    print(f"Error response from daemon: No such container: {node}", file=sys.stderr)
    return 1


def kubectl(args: list[str], state: dict) -> int:
    if args[:2] == ["version", "--client"]:
        print(
            json.dumps({"clientVersion": {"gitVersion": os.environ.get("FAKE_KUBECTL_VERSION", "v1.36.4")}})
        )
        return 0
    config = os.environ.get("KUBECONFIG", "")
    text = Path(config).read_text() if config and Path(config).is_file() else ""
    match = re.search(r"# fake-cluster: (\w+)/(\S+)", text)
    alive = bool(match) and match.group(2) in state.get(match.group(1), {})
    if any(a.startswith("--raw=/readyz") for a in args):
        if not alive:
            print("The connection to the server was refused", file=sys.stderr)
            return 1
        print("ok")
    elif "configmap" in args[:2] or args[:3] == ["create", "-f", "-"]:
        return configmaps(args, state)
    elif args[:1] == ["get"]:
        print(json.dumps({"items": []}))
    return 0


def configmaps(args: list[str], state: dict) -> int:
    """ConfigMaps in kube-system: get -o json, patch --type=merge, create -f - (JSON), delete."""
    stored = state.setdefault("configmaps", {})
    if args[:3] == ["create", "-f", "-"]:
        obj = json.loads(os.environ["FAKE_STDIN"])
        name = obj["metadata"]["name"]
        if name in stored:
            print(f'Error from server (AlreadyExists): configmaps "{name}" already exists', file=sys.stderr)
            return 1
        stored[name] = obj.get("data") or {}
        return 0
    verb, name = args[0], args[2]
    if verb == "delete":
        stored.pop(name, None)
        return 0
    if name not in stored:
        print(f'Error from server (NotFound): configmaps "{name}" not found', file=sys.stderr)
        return 1
    if verb == "get":
        print(json.dumps({"metadata": {"name": name}, "data": stored[name]}))
    elif verb == "patch":
        patch = json.loads(args[args.index("-p") + 1])
        for key, value in (patch.get("data") or {}).items():
            if value is None:
                stored[name].pop(key, None)
            else:
                stored[name][key] = value
    return 0


def main() -> int:
    program, args = Path(sys.argv[0]).name, sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    os.environ["FAKE_STDIN"] = stdin
    with open(_state() / "calls.jsonl", "a") as log:
        log.write(json.dumps({"prog": program, "args": args, "stdin": stdin}) + "\n")
    state = load()
    try:
        code = {"kind": kind, "k3d": k3d, "k3s": k3s, "kubectl": kubectl, "docker": docker}[program](
            args, state
        )
    except Refused as refusal:
        print(f"ERROR: {refusal}" if program == "kind" else f"Error: {refusal}", file=sys.stderr)
        return 1
    save(state)
    return code


def install(bindir: Path, statedir: Path, programs: tuple[str, ...] = PROGRAMS) -> Path:
    """Write the stand-ins into ``bindir`` (which the caller puts first on PATH)."""
    bindir.mkdir(parents=True, exist_ok=True)
    statedir.mkdir(parents=True, exist_ok=True)
    for name in programs:
        path = bindir / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
            "from tests.fake_tools import main\nsys.exit(main())\n"
        )
        path.chmod(0o755)
    return bindir


def use(tmp_path: Path, monkeypatch, programs: tuple[str, ...] = PROGRAMS, only: bool = False) -> Path:
    """Stand-ins first on PATH (with ``only``, alone on it), state and the harness's state
    directory under ``tmp_path``; returns the state directory (for ``calls``)."""
    bindir = install(tmp_path / "bin", tmp_path / "state", programs)
    monkeypatch.setenv("PATH", str(bindir) if only else f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EGRESS_MESH_ARTIFACTS", raising=False)
    return tmp_path / "state"


def calls(statedir: Path, program: str | None = None) -> list[dict]:
    path = statedir / "calls.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [c for c in map(json.loads, lines) if program is None or c["prog"] == program]
