"""Data-plane benchmark: direct vs through the sidecar vs through sidecar + egress gateway.

``python -m benchmarks.dataplane [--requests N] [--duration S] [--concurrency C]`` (or
``nox -s bench -- ...``). Everything runs on loopback in this one run, each program in its own
process as in a pod: a local aiohttp server (the destination), ``mesh-proxy``'s sidecar in
permissive mode (the original destination is fixed to the local server, standing in for the
iptables REDIRECT), and ``mesh-gateway``. A raw asyncio client with keep-alive connections and
``C`` concurrent workers sends ``GET /get`` until ``N`` requests or ``S`` seconds per path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

LOOPBACK = "127.0.0.1"
BODY_SIZE = 256


@dataclass
class Result:
    path: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]

    def summary(self) -> dict:
        return {
            "path": self.path,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p90_ms": round(self.percentile(90), 3),
            "p99_ms": round(self.percentile(99), 3),
        }


# ---------------------------------------------------------------- the client


async def _worker(port: int, request: bytes, result: Result, budget: list[int], deadline: float) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ValueError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                writer.close()
                try:
                    reader, writer = await asyncio.open_connection(LOOPBACK, port)
                except OSError:
                    return
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
    finally:
        writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("response without content-length")


async def measure(name: str, port: int, args: argparse.Namespace) -> Result:
    request = f"GET /get HTTP/1.1\r\nHost: {LOOPBACK}\r\nUser-Agent: mesh-bench\r\n\r\n".encode()
    warm = Result(name)
    await asyncio.gather(
        *(
            _worker(port, request, warm, [args.warmup // args.concurrency + 1], time.perf_counter() + 5)
            for _ in range(args.concurrency)
        )
    )
    result = Result(name)
    budget = [args.requests]
    started = time.perf_counter()
    deadline = started + args.duration
    await asyncio.gather(*(_worker(port, request, result, budget, deadline) for _ in range(args.concurrency)))
    result.seconds = time.perf_counter() - started
    result.errors += warm.errors
    return result


# ---------------------------------------------------------------- the programs under test


async def serve_upstream(port: int) -> None:
    from aiohttp import web

    payload = {"url": "/get", "padding": "x" * BODY_SIZE}

    async def get(request: web.Request) -> web.Response:
        return web.json_response(payload)

    app = web.Application()
    app.router.add_get("/get", get)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port).start()
    await asyncio.Event().wait()


async def serve_sidecar(port: int, upstream_port: int, config_file: Path) -> None:
    from mesh.api.proxyconfig import ProxyConfig
    from mesh.proxy.origdst import fixed
    from mesh.proxy.sidecar import Sidecar

    config = ProxyConfig.from_json(config_file.read_text())
    sidecar = Sidecar(
        config.identity, port=port, host=LOOPBACK, original_destination=fixed(LOOPBACK, upstream_port)
    )
    await sidecar.apply(config)
    await asyncio.Event().wait()


def _sidecar_config(gateway_port: int | None) -> str:
    from mesh.api.proxyconfig import Endpoint, Identity, Mode, ProxyConfig

    gateway = Endpoint(LOOPBACK, gateway_port) if gateway_port else None
    return ProxyConfig(Identity("bench", "bench"), Mode.PERMISSIVE, gateway=gateway).with_version().to_json()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@retry(stop=stop_after_delay(15), wait=wait_fixed(0.1), retry=retry_if_exception_type(OSError), reraise=True)
def _wait_listening(port: int) -> None:
    socket.create_connection((LOOPBACK, port), timeout=1).close()


@contextlib.contextmanager
def programs(workdir: Path) -> Iterator[dict[str, int]]:
    """Start destination, gateway and two sidecars; yield the port each path's client uses."""
    ports = {name: _free_port() for name in ("upstream", "gateway", "sidecar", "sidecar_gw")}
    (workdir / "direct.json").write_text(_sidecar_config(None))
    (workdir / "gateway.json").write_text(_sidecar_config(ports["gateway"]))
    me = [sys.executable, "-m", "benchmarks.dataplane", "--role"]
    commands = {
        "upstream": [*me, "upstream", "--listen-port", str(ports["upstream"])],
        "gateway": [
            *[sys.executable, "-m", "mesh.gateway", "run"],
            *["--host", LOOPBACK, "--port", str(ports["gateway"]), "--log-level", "warning"],
        ],
        "sidecar": [
            *[*me, "sidecar", "--listen-port", str(ports["sidecar"])],
            *["--upstream-port", str(ports["upstream"]), "--config-file", str(workdir / "direct.json")],
        ],
        "sidecar_gw": [
            *[*me, "sidecar", "--listen-port", str(ports["sidecar_gw"])],
            *["--upstream-port", str(ports["upstream"]), "--config-file", str(workdir / "gateway.json")],
        ],
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), *sys.path])}
    started: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            # Records and decisions go to /dev/null: their cost is counted, not their storage.
            log = open(workdir / f"{name}.err", "w")  # noqa: SIM115
            started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env))
            try:
                _wait_listening(ports[name])
            except OSError:
                errors = (workdir / f"{name}.err").read_text()[-500:]
                raise SystemExit(f"bench: {name} did not start: {errors}") from None
        yield {
            "direct": ports["upstream"],
            "sidecar": ports["sidecar"],
            "sidecar+gateway": ports["sidecar_gw"],
        }
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


# ---------------------------------------------------------------- report


def report(results: list[Result], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    base = results[0]
    table = Table(
        title=f"egress-mesh data plane, loopback, {args.concurrency} keep-alive connections, GET /get "
        f"({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs)"
    )
    for column in ("path", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "x req/s", "x p50"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for r in results:
        table.add_row(
            r.path,
            str(r.requests),
            str(r.errors),
            f"{r.rps:,.0f}",
            f"{r.percentile(50):.2f}",
            f"{r.percentile(90):.2f}",
            f"{r.percentile(99):.2f}",
            f"{r.rps / base.rps:.2f}x" if base.rps else "-",
            f"{r.percentile(50) / base.percentile(50):.2f}x" if base.latencies_ms else "-",
        )
    console = Console()
    console.width = max(console.width, 100)
    console.print(table)
    console.print("x req/s, x p50: ratio to direct")


async def run_all(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp, programs(Path(tmp)) as ports:
        return [await measure(name, ports[name], args) for name in args.paths]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dataplane", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=5000, help="requests per path at most (default 5000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per path at most (default 10)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="concurrent keep-alive connections (default 8)"
    )
    parser.add_argument(
        "--warmup", type=int, default=200, help="requests per path before measuring (default 200)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--role", choices=["upstream", "sidecar"], help=argparse.SUPPRESS)
    parser.add_argument("--listen-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.role == "upstream":
        asyncio.run(serve_upstream(args.listen_port))
        return 0
    if args.role == "sidecar":
        asyncio.run(serve_sidecar(args.listen_port, args.upstream_port, args.config_file))
        return 0
    for option in ("requests", "duration", "concurrency"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option} must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    args.paths = ["direct", "sidecar", "sidecar+gateway"]
    results = asyncio.run(run_all(args))
    report(results, args)
    if args.json:
        data = {"concurrency": args.concurrency, "results": [r.summary() for r in results]}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    failed = [r.path for r in results if r.requests == 0]
    if failed:
        print(f"bench: no successful request through {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
