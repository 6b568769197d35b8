"""The programs the data-plane benchmark starts: destinations (nginx, aiohttp), our sidecar and
gateway, and the peers (squid, tinyproxy), each configured here for loopback, an allowlist and
no cache, each in its own process so its CPU and memory can be read from /proc."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from benchmarks.roles import LOOPBACK, PAYLOAD

BULK_BYTES = 100 * 1024 * 1024
OTHER_HOSTS = tuple(f"api{i}.example.com" for i in range(10))  # the policy's other Egress hosts


@dataclass
class Program:
    name: str
    command: list[str]
    port: int
    proc: subprocess.Popen | None = None
    config: Path | None = None


@dataclass
class Target:
    """One path a client can measure: where to connect, what to send, whose CPU and RSS count."""

    name: str
    port: int
    absolute: bool  # forward proxies want ``GET http://host:port/path``
    dest_port: int
    pids: list[int] = field(default_factory=list)  # whose CPU is charged to this path

    def path(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.dest_port}{path}" if self.absolute else path

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.dest_port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def missing_tools() -> list[str]:
    return [tool for tool in ("nginx", "squid", "tinyproxy", "wrk") if not shutil.which(tool)]


# ---------------------------------------------------------------- configurations


def nginx(workdir: Path, port: int) -> Program:
    bulk = workdir / "bulk.bin"
    with bulk.open("wb") as out:
        out.truncate(BULK_BYTES)
    temp = " ".join(
        f"{kind}_temp_path {workdir}/ngx-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off; master_process off; worker_processes 1; pid {workdir}/nginx.pid;
error_log {workdir}/nginx.err warn; worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off; {temp}
  keepalive_requests 10000000; keepalive_timeout 600s; sendfile on;
  server {{
    listen {LOOPBACK}:{port} backlog=4096;
    location = /get {{ default_type application/json; return 200 '{PAYLOAD}'; }}
    location = /bulk {{ alias {bulk}; }}
  }}
}}
"""
    )
    return Program(
        "nginx", ["nginx", "-p", str(workdir), "-e", f"{workdir}/nginx.err", "-c", str(conf)], port
    )


def squid(workdir: Path, port: int, name: str = "squid") -> Program:
    """squid as a forward proxy with an allowlist; the same configuration serves the sidecar's
    ``CONNECT`` tunnels when squid stands in for the egress gateway (``name`` keeps the two apart)."""
    conf = workdir / f"{name}.conf"
    conf.write_text(
        f"""http_port {LOOPBACK}:{port}
pid_filename {workdir}/{name}.pid
cache_log {workdir}/{name}-cache.log
access_log stdio:{workdir}/{name}-access.log
coredump_dir {workdir}
pinger_enable off
max_filedescriptors 16384
shutdown_lifetime 0 seconds
cache deny all
cache_mem 0 MB
acl allowed dstdomain {LOOPBACK} {" ".join(OTHER_HOSTS)}
http_access allow allowed
http_access deny all
"""
    )
    return Program(name, ["squid", "-N", "-f", str(conf)], port)


def tinyproxy(workdir: Path, port: int) -> Program:
    allowlist = workdir / "tinyproxy.filter"
    allowlist.write_text(
        "\n".join(f"^{h.replace('.', chr(92) + '.')}$" for h in (LOOPBACK, *OTHER_HOSTS)) + "\n"
    )
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        f"""User proxy
Group proxy
Port {port}
Listen {LOOPBACK}
Timeout 600
MaxClients 2000
Allow {LOOPBACK}
Filter "{allowlist}"
FilterType ere
FilterDefaultDeny Yes
LogFile "{workdir}/tinyproxy.log"
LogLevel Connect
"""
    )
    return Program("tinyproxy", ["tinyproxy", "-d", "-c", str(conf)], port)


def sidecar_config(kind: str, dest_port: int, gateway_port: int | None) -> str:
    from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, Rule

    identity = Identity("bench", "bench")
    gateway = Endpoint(LOOPBACK, gateway_port) if gateway_port else None
    if kind == "policy":
        rules = tuple(
            Rule(Protocol.HTTP, dest_port, hosts=(host,), egress=f"bench/egress-{i}")
            for i, host in enumerate((*OTHER_HOSTS, LOOPBACK))
        )
        config = ProxyConfig(identity, Mode.POLICY, rules=rules, gateway=gateway)
    else:
        config = ProxyConfig(identity, Mode.PERMISSIVE, gateway=gateway)
    return config.with_version().to_json()


def role(name: str, port: int, *extra: str) -> list[str]:
    """A child process running ``benchmarks.roles``."""
    return [sys.executable, "-m", "benchmarks.roles", name, str(port), *extra]


# ---------------------------------------------------------------- starting and stopping


@retry(stop=stop_after_delay(20), wait=wait_fixed(0.1), retry=retry_if_exception_type(OSError), reraise=True)
def wait_listening(port: int) -> None:
    socket.create_connection((LOOPBACK, port), timeout=1).close()


def start(program: Program, workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), *sys.path])}
    errors = open(workdir / f"{program.name}.stderr", "w")  # noqa: SIM115 (closed with the process)
    # Logs go to /dev/null (ours) or a file (peers): their cost is counted, not their storage.
    program.proc = subprocess.Popen(
        program.command,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        env=env,
        cwd=workdir,
        start_new_session=True,
    )
    try:
        wait_listening(program.port)
    except OSError:
        stop([program])
        tail = (workdir / f"{program.name}.stderr").read_text()[-800:]
        raise SystemExit(f"bench: {program.name} did not start listening on {program.port}: {tail}") from None


def stop(programs: list[Program]) -> None:
    for program in programs:
        if program.proc and program.proc.poll() is None:
            program.proc.terminate()
    for program in programs:
        if program.proc is None:
            continue
        try:
            program.proc.wait(5)
        except subprocess.TimeoutExpired:
            program.proc.kill()
            program.proc.wait(5)
