"""``python -m scenarios doctor``: what a backend needs, what is missing here, and how to fix it.

Nothing is created or changed: programs are asked for their versions, the Docker engine and the
kubeconfig's API server whether they answer, free disk is measured. Each ``Check`` carries the
command that fixes it; a required check that fails makes the exit code non-zero.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scenarios.clusters import records
from scenarios.clusters.base import BackendOptions
from scenarios.clusters.k3d import K3D_VERSION
from scenarios.clusters.kind import KIND_NODE_IMAGES, KIND_VERSION
from scenarios.clusters.kubernetes import KUBECTL_VERSION, default_kubeconfig, minor_of
from scenarios.clusters.registry import CREATING_BACKENDS

GIB = 1024**3
#: free disk each backend wants where Docker keeps images (node images, our images, a cluster)
FREE_DISK_GIB = {"docker": 5, "k3s": 3, "external": 5} | dict.fromkeys(CREATING_BACKENDS, 10)
#: what kind and k3d start without --k8s-version
NEWEST_MINOR = max(KIND_NODE_IMAGES, key=lambda minor: tuple(int(x) for x in minor.split(".")))
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@dataclass
class Check:
    what: str
    ok: bool
    found: str
    fix: str = ""
    required: bool = True


def _run(argv: list[str], timeout: float = 20.0, env: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {timeout:.0f}s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _install(name: str, url: str) -> str:
    return f"curl -fsSLo {name} {url} && sudo install -m 0755 {name} /usr/local/bin/{name} && rm {name}"


INSTALL = {
    "kind": _install(
        "kind", f"https://github.com/kubernetes-sigs/kind/releases/download/{KIND_VERSION}/kind-linux-{ARCH}"
    ),
    "k3d": _install("k3d", f"https://github.com/k3d-io/k3d/releases/download/{K3D_VERSION}/k3d-linux-{ARCH}"),
    "kubectl": _install("kubectl", f"https://dl.k8s.io/release/{KUBECTL_VERSION}/bin/linux/{ARCH}/kubectl"),
    "k3s": "curl -sfL https://get.k3s.io | sh -s - --disable traefik --write-kubeconfig-mode 644",
}
VERSION_ARGV = {
    "kind": (["kind", "version"], r"kind v(\d+\.\d+\.\d+\S*)"),
    "k3d": (["k3d", "version"], r"k3d version v(\d+\.\d+\.\d+\S*)"),
    "k3s": (["k3s", "--version"], r"k3s version v(\d+\.\d+\.\d+\S*)"),
    "kubectl": (
        ["kubectl", "version", "--client", "--output=json"],
        r'"gitVersion":\s*"v(\d+\.\d+\.\d+[^"]*)"',
    ),
}
PINNED = {"kind": KIND_VERSION, "k3d": K3D_VERSION}


def program(name: str) -> list[Check]:
    """Installed and answering with a version; a version other than the tested one is a warning."""
    argv, pattern = VERSION_ARGV[name]
    if shutil.which(argv[0]) is None:
        return [Check(name, False, "not on PATH", INSTALL[name])]
    code, out = _run(argv)
    match = re.search(pattern, out)
    if code != 0 or not match:
        return [Check(name, False, f"`{' '.join(argv)}` failed: {out[-200:]}", INSTALL[name])]
    version = "v" + match.group(1)
    checks = [Check(name, True, f"{version} ({shutil.which(argv[0])})")]
    pinned = PINNED.get(name)
    if pinned and version != pinned:
        checks.append(
            Check(f"{name} version", False, f"{version}; tested with {pinned}", INSTALL[name], False)
        )
    return checks


def kubectl_skew(target_minor: str) -> list[Check]:
    """kubectl talks to API servers one minor version away at most."""
    code, out = _run(VERSION_ARGV["kubectl"][0])
    match = re.search(VERSION_ARGV["kubectl"][1], out)
    if code != 0 or not match:
        return []
    have, want = minor_of(match.group(1)), target_minor
    if (
        abs(int(have.split(".")[1]) - int(want.split(".")[1])) <= 1
        and have.split(".")[0] == want.split(".")[0]
    ):
        return []
    return [
        Check("kubectl version skew", False, f"kubectl {have}, cluster {want}", INSTALL["kubectl"], False)
    ]


def docker_engine() -> tuple[list[Check], object | None]:
    """The engine's check, and a client when it answers."""
    import docker

    try:
        client = docker.from_env()
        version = client.version()
    except Exception as error:  # the SDK raises several unrelated types when no engine answers
        text = str(error)
        if "ermission denied" in text:
            fix = "sudo usermod -aG docker $USER (then log in again), or run as root"
        elif shutil.which("dockerd"):
            fix = "sudo systemctl start docker (or: sudo .ci/setup)"
        else:
            fix = "sudo .ci/setup (installs docker.io and starts dockerd)"
        return [Check("Docker engine", False, f"no answer: {text[:200]}", fix)], None
    found = f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"
    return [Check("Docker engine", True, found)], client


def base_image(options: BackendOptions, client) -> list[Check]:
    if options.base_image:
        return [Check("base image", True, f"{options.base_image} (--base-image; pulled if missing)")]
    from scenarios.base_image import BASE_REPOSITORY

    if client.images.list(name=BASE_REPOSITORY):
        return [Check("base image", True, f"{BASE_REPOSITORY} is built")]
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        return [
            Check(
                "base image",
                False,
                f"{BASE_REPOSITORY} not built, and building it needs debootstrap and root",
                "sudo apt-get install -y debootstrap, run as root; or --base-image debian:bookworm-slim",
            )
        ]
    return [Check("base image", True, f"{BASE_REPOSITORY} will be built with debootstrap (1-2 min, once)")]


def free_disk(backend: str, client) -> list[Check]:
    """Where Docker keeps images when the engine says so (and it is on this machine), else home."""
    root = (client.info() or {}).get("DockerRootDir", "") if client is not None else ""
    where = Path(root) if root and Path(root).exists() else Path.home()
    free = shutil.disk_usage(where).free
    need = FREE_DISK_GIB[backend]
    found = f"{free / GIB:.1f} GiB free on {where}"
    if free >= need * GIB:
        return [Check("free disk", True, found)]
    return [
        Check("free disk", False, f"{found}; needs {need} GiB", "docker system prune (or free space there)")
    ]


def kubeconfig(options: BackendOptions, backend: str) -> list[Check]:
    found = default_kubeconfig(options.kubeconfig)
    if not found:
        fix = INSTALL["k3s"] if backend == "k3s" else "pass --kubeconfig FILE or set KUBECONFIG"
        return [
            Check("kubeconfig", False, "none (tried --kubeconfig, $KUBECONFIG, ~/.kube/config, k3s's)", fix)
        ]
    if shutil.which("kubectl") is None:
        return [Check("kubeconfig", False, f"{found}: cannot check without kubectl", INSTALL["kubectl"])]
    code, out = _run(["kubectl", "get", "--raw=/readyz"], env={**os.environ, "KUBECONFIG": found})
    if code != 0:
        return [
            Check(
                "cluster reachable", False, f"{found}: {out[-200:]}", "check the cluster and the kubeconfig"
            )
        ]
    return [Check("cluster reachable", True, f"{found}: API server ready")]


def cluster_name(backend: str, options: BackendOptions, exists: Callable[[], bool]) -> list[Check]:
    """Whether ``up()`` would create, reuse or refuse the named cluster."""
    name = options.cluster_name
    try:
        present = exists()
    except Exception as error:  # the tool itself is missing or broken: reported by its own check
        return [Check("cluster name", False, f"{name}: cannot tell ({str(error)[:150]})", required=False)]
    recorded = records.find(backend, name) is not None
    if not present:
        return [Check("cluster name", True, f"{name}: will be created (and deleted unless --keep)")]
    if recorded:
        return [Check("cluster name", True, f"{name}: kept by an earlier run, will be reused")]
    if options.reuse:
        return [Check("cluster name", True, f"{name}: not created by egress-mesh, used because of --reuse")]
    return [
        Check(
            "cluster name",
            False,
            f"{name}: exists and was not created by egress-mesh",
            "pass --reuse to run in it, or --cluster-name OTHER",
        )
    ]


def checks(backend: str, options: BackendOptions) -> list[Check]:
    from scenarios.clusters import create

    found: list[Check] = []
    client = None
    if backend != "k3s":
        engine, client = docker_engine()
        found += engine
        found += base_image(options, client) if client is not None else []
    if backend in ("kind", "k3d"):
        found += program(backend)
    if backend == "k3s":
        found += program("k3s")
        if os.geteuid() != 0 and _run(["sudo", "-n", "true"])[0] != 0:
            found.append(Check("root for k3s ctr", False, "not root and sudo -n refused", "run as root"))
    if backend != "docker":
        found += program("kubectl")
    if backend in CREATING_BACKENDS:
        try:
            found += kubectl_skew(minor_of(options.k8s_version) if options.k8s_version else NEWEST_MINOR)
        except ValueError as error:
            found.append(Check("--k8s-version", False, str(error), "pass e.g. --k8s-version 1.36"))
        if ready(found):
            found += cluster_name(backend, options, create(backend, options).exists)  # type: ignore[attr-defined]
    if backend == "k3s-container":
        try:
            import testcontainers.k3s  # noqa: F401
        except ImportError:
            found.append(
                Check("testcontainers[k3s]", False, "not importable", "pip install 'testcontainers[k3s]'")
            )
    if backend in ("k3s", "external"):
        found += kubeconfig(options, backend)
    if backend == "external" and not options.registry:
        found.append(
            Check("registry", False, "no --registry", "pass --registry HOST[:PORT]/PATH (nodes pull from it)")
        )
    found += free_disk(backend, client)
    return found


def ready(found: list[Check]) -> bool:
    return all(check.ok for check in found if check.required)


def lines(found: list[Check]) -> list[tuple[str, str, str, str]]:
    """(status, what, found, fix) rows for display."""
    rows = []
    for check in found:
        status = "ok" if check.ok else ("MISSING" if check.required else "warning")
        rows.append((status, check.what, check.found, "" if check.ok else check.fix))
    return rows


def summary(backend: str, found: list[Check]) -> str:
    missing = [c.what for c in found if c.required and not c.ok]
    if not missing:
        return f"backend {backend}: ready"
    return f"backend {backend}: missing {', '.join(missing)}"
