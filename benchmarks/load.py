"""Load and measurement for the data-plane benchmark: wrk runs (throughput at N keep-alive
connections, latency at a fixed rate), CPU and RSS of processes from /proc, how much of the machine
other processes took during a run, idle connections and one bulk download."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.peers import LOOPBACK, Target

TICK = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1

# wrk's done() prints one machine-readable line; delay() (when set) paces each connection.
_LUA = """wrk.method = "GET"
wrk.path = "{path}"
wrk.headers["Host"] = "{host}"
wrk.headers["User-Agent"] = "mesh-bench"
{delay}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Run:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float  # CPU time of the path's own processes (proxies, not destination)
    system_share: float  # of that, the part spent in the kernel (system calls)
    others: float  # share of the whole machine other processes used meanwhile (0..1)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds all processors spent running processes (user, nice, system) or stolen by the
    hypervisor since boot. Interrupt and softirq time is left out: loopback networking spends
    much of it on our own traffic, and no process is charged for it."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = values[:8]
    return (user + nice + system + steal) / TICK


def wrk(
    target: Target, connections: int, seconds: float, workdir: Path, ours: list[int], pace_ms: int = 0
) -> Run:
    """One wrk run against ``target``. ``ours`` are the pids of every program of this benchmark
    (to tell their CPU from other processes'); ``target.processes``' pids are charged per request."""
    script = workdir / f"wrk-{target.name}.lua"
    delay = f"function delay() return {pace_ms} end" if pace_ms else ""
    script.write_text(_LUA.format(path=target.path("/get"), host=target.host, delay=delay))
    charged = target.pids
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
        "-s", str(script), f"http://{LOOPBACK}:{target.port}/",
    ]  # fmt: skip
    before_ours = sum(cpu_seconds(p) for p in ours)
    before_charged = [cpu_times(p) for p in charged]
    before_self = _self_cpu()
    before_busy = machine_busy_seconds()
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=seconds + 60)
    wall = time.monotonic() - started
    busy = machine_busy_seconds() - before_busy
    after_charged = [cpu_times(p) for p in charged]
    charged_system = sum(a[1] - b[1] for a, b in zip(after_charged, before_charged, strict=True))
    charged_cpu = sum(sum(a) - sum(b) for a, b in zip(after_charged, before_charged, strict=True))
    ours_cpu = sum(cpu_seconds(p) for p in ours) - before_ours + _self_cpu() - before_self
    wrk_cpu = _children_cpu_delta()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk against {target.name} failed: {err.strip() or out.strip()}")
    requests, micros, errors, status_errors, p50, p99 = (int(v) for v in line.split()[1:])
    others = max(0.0, busy - ours_cpu - wrk_cpu) / (wall * CPUS)
    return Run(
        requests=requests,
        seconds=micros / 1e6,
        errors=errors + status_errors,
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        cpu_us_per_request=charged_cpu / requests * 1e6 if requests and charged else 0.0,
        system_share=charged_system / charged_cpu if charged_cpu else 0.0,
        others=others,
    )


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_children_seen = [0.0]


def _children_cpu_delta() -> float:
    """CPU of waited-for children (wrk) since the last call."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    delta, _children_seen[0] = total - _children_seen[0], total
    return delta


def request_bytes(target: Target, path: str) -> bytes:
    return (
        f"GET {target.path(path)} HTTP/1.1\r\nHost: {target.host}\r\nUser-Agent: mesh-bench\r\n\r\n".encode()
    )


def _read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one response with a Content-Length body; return the body size."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    length = next(
        int(x.split(b":")[1]) for x in head.lower().split(b"\r\n") if x.startswith(b"content-length:")
    )
    received = len(rest)
    view = memoryview(buffer)
    while received < length:
        n = sock.recv_into(view)
        if not n:
            raise ConnectionError("closed inside the body")
        received += n
    return length


def idle_connections(target: Target, count: int) -> tuple[list[socket.socket], str]:
    """``count`` keep-alive connections to ``target``, each after one request; and an error text."""
    socks: list[socket.socket] = []
    buffer = bytearray(65536)
    request = request_bytes(target, "/get")
    try:
        for _ in range(count):
            sock = socket.create_connection((LOOPBACK, target.port), timeout=10)
            socks.append(sock)
            sock.sendall(request)
            _read_response(sock, buffer)
    except OSError as exc:
        return socks, f"after {len(socks)} connections: {exc}"
    return socks, ""


def bulk(target: Target) -> float:
    """MB/s of one 100 MB response through ``target``."""
    buffer = bytearray(1 << 20)
    with socket.create_connection((LOOPBACK, target.port), timeout=30) as sock:
        started = time.perf_counter()
        sock.sendall(request_bytes(target, "/bulk"))
        size = _read_response(sock, buffer)
        return size / (time.perf_counter() - started) / 1e6
