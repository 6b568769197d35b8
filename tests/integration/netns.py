"""Network-namespace fixtures: a "pod" and a "world" joined by a veth pair.

::

    pod netns  10.77.0.1/24  <-- veth -->  10.77.0.2/24, 10.77.0.3/24  world netns

The addresses exist only inside the two namespaces this module creates (names are unique per
process, so parallel runs do not clash). ``ip netns exec NAME`` bind-mounts
``/etc/netns/NAME/hosts`` over ``/etc/hosts``, which is how ``httpbin.org`` and friends resolve
to the world address inside the namespaces. Everything is removed by ``Topology.down``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from itertools import count
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

REPO = Path(__file__).resolve().parents[2]
POD_IP = "10.77.0.1"
WORLD_IP = "10.77.0.2"  # httpbin.org, httpstat.us, the egress gateway
OTHER_IP = "10.77.0.3"  # a second world server that allowed names must never reach
PREFIX = 24
WORLD_NAMES = (
    "httpbin.org",
    "www.httpbin.org",
    "httpstat.us",
    "global-egress-gateway.test",
    "global-egress-gateway.egress-gateway.svc.cluster.local",
)
PROXY_UID = 1500
_serial = count()


def missing_requirement() -> str | None:
    """Why the namespace tests cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables)"
    for binary in ("ip", "iptables", "iptables-restore", "curl", "setpriv"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed"
    return None


def run(*argv: str, check: bool = True, timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, timeout=timeout, capture_output=True, **kwargs)


def python_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class NotYet(Exception):
    pass


def wait_until(check, timeout: float = 10, interval: float = 0.1, what: str = "condition"):
    """Retry ``check`` until it returns something truthy; AssertionError naming ``what`` on timeout."""
    retrying = Retrying(
        retry=retry_if_exception_type(NotYet),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                result = check()
                if not result:
                    raise NotYet(what)
                return result
    except NotYet:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
    return None


class Process:
    """A background process in a namespace; stdout goes to a file we can read as JSON lines."""

    def __init__(self, argv: list[str], log: Path):
        self.log = log
        self.argv = argv
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=python_env(), start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.output().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


class Namespace:
    def __init__(self, name: str):
        self.name = name

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, check: bool = False, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess:
        return run(*self.argv(*argv), check=check, timeout=timeout, env=python_env(), **kw)

    def python(self, code: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-c", code, timeout=timeout)

    def spawn(self, argv: list[str], log: Path, uid: int | None = None) -> Process:
        prefix: list[str] = []
        if uid is not None:
            # The test Python lives under /root; keep the right to read it after dropping root.
            prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                      "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]  # fmt: skip
        return Process(self.argv(*prefix, *argv), log)


class Topology:
    def __init__(self, hosts: dict[str, str] | None = None):
        tag = f"em{os.getpid() % 100000}x{next(_serial)}"
        self.pod = Namespace(f"{tag}-pod")
        self.world = Namespace(f"{tag}-world")
        self.veth = (f"{tag}p", f"{tag}w")
        self.hosts = hosts or {name: WORLD_IP for name in WORLD_NAMES}
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
        self.tmp.chmod(0o755)
        self.processes: list[Process] = []

    def up(self) -> Topology:
        try:
            for ns in (self.pod, self.world):
                run("ip", "netns", "add", ns.name)
                run("ip", "-n", ns.name, "link", "set", "lo", "up")
                self._write_hosts(ns)
            pod_if, world_if = self.veth
            run("ip", "link", "add", pod_if, "netns", self.pod.name, "type", "veth", "peer", "name", world_if,
                "netns", self.world.name)  # fmt: skip
            run("ip", "-n", self.pod.name, "addr", "add", f"{POD_IP}/{PREFIX}", "dev", pod_if)
            for address in (WORLD_IP, OTHER_IP):
                run("ip", "-n", self.world.name, "addr", "add", f"{address}/{PREFIX}", "dev", world_if)
            run("ip", "-n", self.pod.name, "link", "set", pod_if, "up")
            run("ip", "-n", self.world.name, "link", "set", world_if, "up")
        except BaseException:
            self.down()
            raise
        return self

    def _write_hosts(self, ns: Namespace) -> None:
        folder = Path("/etc/netns") / ns.name
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{address} {name}" for name, address in self.hosts.items()]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def spawn(self, ns: Namespace, argv: list[str], name: str, uid: int | None = None) -> Process:
        process = ns.spawn(argv, self.tmp / f"{name}.log", uid=uid)
        self.processes.append(process)
        return process

    def spawn_mesh(self, manifests: Path) -> tuple[Process, Process]:
        """mesh-controller reading ``manifests`` in the world namespace, and a sidecar for curl/curl
        in the pod namespace long-polling it: (controller, sidecar)."""
        argv = [sys.executable, "-m", "mesh.controller", "run", "--source", "directory",
                "--manifests", str(manifests), "--host", WORLD_IP, "--port", "15128",
                "--webhook-port", "0", "--poll-interval", "0.2"]  # fmt: skip
        controller = self.spawn(self.world, argv, manifests.name + "-controller")
        argv = [sys.executable, "-m", "mesh.proxy", "run", "--controller", f"http://{WORLD_IP}:15128",
                "--identity", "curl/curl"]  # fmt: skip
        return controller, self.spawn(self.pod, argv, manifests.name + "-sidecar", uid=PROXY_UID)

    def down(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()
        for ns in (self.pod, self.world):
            run("ip", "netns", "del", ns.name, check=False)
            shutil.rmtree(Path("/etc/netns") / ns.name, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Topology:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()
