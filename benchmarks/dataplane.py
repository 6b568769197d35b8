"""Data-plane benchmark: direct vs sidecar (permissive, policy) vs sidecar + gateway vs squid and
tinyproxy, in one run, interleaved and repeated; and the sidecar with squid as its gateway, to show
what the gateway's hop costs with a peer relaying the tunnels.

``python -m benchmarks.dataplane [--rounds 3] [--duration 4] [--json FILE]`` (or ``nox -s bench
-- ...``). See docs/benchmark.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks import load
from benchmarks.peers import (
    LOOPBACK,
    Program,
    Target,
    free_port,
    missing_tools,
    nginx,
    role,
    sidecar_config,
    squid,
    start,
    stop,
    tinyproxy,
)

PEER_GATEWAY = "sidecar + squid gateway"  # our sidecar's tunnels relayed by squid instead of our gateway
PATHS = (
    "direct", "sidecar permissive", "sidecar policy", "sidecar + gateway", PEER_GATEWAY, "squid", "tinyproxy"
)  # fmt: skip
PROXIES = tuple(path for path in PATHS[1:] if path != PEER_GATEWAY)  # each proxy's memory, once
CONNECTIONS = (8, 64)
PACE_CONNECTIONS, PACE_MS = 10, 10  # about 1,000 req/s in all
IDLE_CONNECTIONS = 1000
BUSY = 0.10  # other processes using more than this share of the machine make a run untrustworthy


class Bench:
    def __init__(self, workdir: Path, destinations: list[str]):
        self.workdir = workdir
        self.destinations = destinations
        self.programs: dict[str, Program] = {}
        self.targets: dict[tuple[str, str], Target] = {}

    def add(self, program: Program) -> Program:
        self.programs[program.name] = program
        return program

    def start_all(self) -> None:
        work = self.workdir
        os.chmod(work, 0o777)  # squid and tinyproxy write their logs as user proxy
        ports = {"nginx": free_port(), "aiohttp": free_port()}
        gateway = self.add(
            Program(
                "gateway",
                [sys.executable, "-m", "mesh.gateway", "run", "--host", LOOPBACK, "--log-level", "warning"],
                free_port(),
            )
        )
        gateway.command += ["--port", str(gateway.port)]
        self.add(nginx(work, ports["nginx"]))
        if "aiohttp" in self.destinations:
            self.add(Program("aiohttp", role("aiohttp", ports["aiohttp"]), ports["aiohttp"]))
        self.add(squid(work, free_port()))
        squid_gateway = self.add(squid(work, free_port(), "squid-gateway"))
        self.add(tinyproxy(work, free_port()))
        kinds = (
            ("permissive", None),
            ("policy", None),
            ("gateway", gateway.port),
            ("squidgw", squid_gateway.port),
        )
        for dest in self.destinations:
            for kind, gw in kinds:
                name = f"sidecar-{kind}-{dest}"
                config = work / f"{name}.json"
                config.write_text(
                    sidecar_config("policy" if kind == "policy" else "permissive", ports[dest], gw)
                )
                port = free_port()
                command = role("sidecar", port, str(ports[dest]), str(config))
                self.add(Program(name, command, port))
        for program in self.programs.values():
            start(program, work)
        pid = {name: p.proc.pid for name, p in self.programs.items() if p.proc}
        for dest in self.destinations:
            port = ports[dest]
            sc = {k: self.programs[f"sidecar-{k}-{dest}"] for k, _ in kinds}
            for target in (
                Target("direct", port, False, port),
                Target(
                    "sidecar permissive", sc["permissive"].port, False, port, [pid[sc["permissive"].name]]
                ),
                Target("sidecar policy", sc["policy"].port, False, port, [pid[sc["policy"].name]]),
                Target(
                    "sidecar + gateway",
                    sc["gateway"].port,
                    False,
                    port,
                    [pid[sc["gateway"].name], pid["gateway"]],
                ),
                Target(
                    PEER_GATEWAY,
                    sc["squidgw"].port,
                    False,
                    port,
                    [pid[sc["squidgw"].name], pid["squid-gateway"]],
                ),
                Target("squid", self.programs["squid"].port, True, port, [pid["squid"]]),
                Target("tinyproxy", self.programs["tinyproxy"].port, True, port, [pid["tinyproxy"]]),
            ):
                self.targets[(dest, target.name)] = target

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.programs.values() if p.proc]

    def stop_all(self) -> None:
        stop(list(self.programs.values()))


# ---------------------------------------------------------------- phases


def memory(bench: Bench, count: int) -> dict[str, dict]:
    """Idle RSS of each proxy, then with ``count`` idle keep-alive connections (one request each)."""
    out: dict[str, dict] = {}
    for path in PROXIES:
        target = bench.targets[("nginx", path)]
        pid = target.pids[-1]  # the gateway for sidecar + gateway, else the proxy itself
        before = load.rss_kb(pid)
        socks, error = load.idle_connections(target, count)
        time.sleep(0.5)
        after = load.rss_kb(pid)
        opened = len(socks)
        for sock in socks:
            sock.close()
        out[path] = {
            "process": "gateway" if path == "sidecar + gateway" else path.split()[0],
            "idle_rss_mb": round(before / 1024, 1),
            "rss_mb_with_connections": round(after / 1024, 1),
            "connections": opened,
            "kb_per_connection": round((after - before) / opened, 1) if opened else None,
            "error": error or None,
        }
        if path == "sidecar + gateway":
            sidecar_pid = target.pids[0]
            out[path]["sidecar_rss_mb"] = round(load.rss_kb(sidecar_pid) / 1024, 1)
        time.sleep(1.0)  # let the proxies notice the closes
    return out


def rounds(bench: Bench, args: argparse.Namespace, say) -> list[dict]:
    """Every path, interleaved, ``args.rounds`` times; each round starts one path further on."""
    results = []
    for number in range(args.rounds):
        order = PATHS[number % len(PATHS) :] + PATHS[: number % len(PATHS)]
        for connections in CONNECTIONS:
            for dest in bench.destinations:
                for path in order:
                    run = load.wrk(
                        bench.targets[(dest, path)], connections, args.duration, bench.workdir, bench.pids
                    )
                    results.append(
                        {"round": number + 1, "kind": "throughput", "destination": dest, "path": path,
                         "connections": connections, **asdict(run), "rps": run.rps}
                    )  # fmt: skip
                    say(f"round {number + 1}: {dest:7} {path:23} {connections:2} conns {run.rps:9,.0f} req/s"
                        f"  cpu {run.cpu_us_per_request:6.1f} us/req ({run.system_share:3.0%} kernel)"
                        f"  others {run.others:4.0%}")  # fmt: skip
        for path in order:
            target = bench.targets[("nginx", path)]
            run = load.wrk(
                target, PACE_CONNECTIONS, args.duration, bench.workdir, bench.pids, pace_ms=PACE_MS
            )
            results.append(
                {"round": number + 1, "kind": "latency", "destination": "nginx", "path": path,
                 "connections": PACE_CONNECTIONS, **asdict(run), "rps": run.rps}
            )  # fmt: skip
            say(
                f"round {number + 1}: fixed rate {path:23} {run.rps:6,.0f} req/s"
                f" p50 {run.p50_ms:.2f} ms p99 {run.p99_ms:.2f} ms"
            )
        for path in order:
            mbps = load.bulk(bench.targets[("nginx", path)])
            results.append(
                {"round": number + 1, "kind": "bulk", "destination": "nginx", "path": path, "mb_s": mbps}
            )
            say(f"round {number + 1}: bulk {path:23} {mbps:7.0f} MB/s")
    return results


# ---------------------------------------------------------------- summary and goals


def median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(results: list[dict], destinations: list[str]) -> dict:
    def pick(kind, dest, path, connections=None):
        return [
            r
            for r in results
            if r["kind"] == kind and r["destination"] == dest and r["path"] == path
            and (connections is None or r["connections"] == connections)
        ]  # fmt: skip

    summary: dict = {}
    for dest in destinations:
        for path in PATHS:
            row: dict = {}
            for c in CONNECTIONS:
                runs = pick("throughput", dest, path, c)
                row[f"rps_{c}"] = median(runs, "rps")
                row[f"cpu_us_{c}"] = median(runs, "cpu_us_per_request") if path != "direct" else None
                row[f"system_share_{c}"] = median(runs, "system_share") if path != "direct" else None
                row[f"errors_{c}"] = sum(r["errors"] for r in runs)
            if dest == "nginx":
                lat = pick("latency", dest, path)
                row["p50_ms"], row["p99_ms"] = median(lat, "p50_ms"), median(lat, "p99_ms")
                row["bulk_mb_s"] = median(pick("bulk", dest, path), "mb_s")
            summary.setdefault(dest, {})[path] = row
    direct = summary["nginx"]["direct"]
    for row in summary["nginx"].values():
        if row.get("p50_ms") is not None and direct.get("p50_ms") is not None:
            row["added_p50_ms"] = round(row["p50_ms"] - direct["p50_ms"], 3)
            row["added_p99_ms"] = round(row["p99_ms"] - direct["p99_ms"], 3)
    return summary


def goals(summary: dict, memory_rows: dict) -> list[tuple[str, bool, str]]:
    """The goals of issue 13, each with whether it is met and the figures."""
    rows = summary["nginx"]
    squid_row, checks = rows["squid"], []
    for path in ("sidecar permissive", "sidecar policy"):
        row = rows[path]
        for c in CONNECTIONS:
            ratio = row[f"rps_{c}"] / squid_row[f"rps_{c}"]
            checks.append((f"{path} req/s at {c} conns >= 2.0x squid", ratio >= 2.0, f"{ratio:.2f}x"))
        for c in CONNECTIONS:
            ratio = row[f"cpu_us_{c}"] / squid_row[f"cpu_us_{c}"]
            checks.append((f"{path} CPU/request at {c} conns <= 0.5x squid", ratio <= 0.5, f"{ratio:.2f}x"))
        ok = row["added_p99_ms"] <= squid_row["added_p99_ms"]
        checks.append(
            (
                f"{path} added p99 <= squid's",
                ok,
                f"+{row['added_p99_ms']:.2f} vs +{squid_row['added_p99_ms']:.2f} ms",
            )
        )
    for c in CONNECTIONS:
        alone = rows["sidecar permissive"][f"rps_{c}"]
        ratio = rows["sidecar + gateway"][f"rps_{c}"] / alone
        peer = rows[PEER_GATEWAY][f"rps_{c}"] / alone
        checks.append(
            (
                f"sidecar + gateway at {c} conns >= 0.7x sidecar",
                ratio >= 0.7,
                f"{ratio:.2f}x (with squid as the gateway: {peer:.2f}x)",
            )
        )
    mem = memory_rows["sidecar permissive"]
    per = mem["kb_per_connection"]
    checks.append(("sidecar memory per open connection <= 11 KB", per is not None and per <= 11, f"{per} KB"))
    checks.append(("sidecar idle RSS <= 30 MB", mem["idle_rss_mb"] <= 30, f"{mem['idle_rss_mb']} MB"))
    return checks


def busy_rounds(results: list[dict]) -> list[str]:
    notes = []
    for r in results:
        if r["kind"] != "bulk" and r["others"] > BUSY:
            notes.append(
                f"round {r['round']}: other processes used {r['others']:.0%} of the machine during "
                f"{r['path']} ({r['kind']}, {r['destination']}, {r['connections']} conns)"
            )
    return notes


def report(summary: dict, memory_rows: dict, checks, notes: list[str], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    for dest in summary:
        rows = summary[dest]
        table = Table(
            title=f"destination {dest}: {args.rounds} rounds x {args.duration:g} s, medians "
            f"({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs)"
        )
        columns = ["path"]
        for c in CONNECTIONS:
            columns += [f"req/s {c}", "x direct", "x squid", f"CPU us/req {c}"]
        if dest == "nginx":
            columns += ["added p50/p99 ms", "bulk MB/s"]
        for column in columns:
            table.add_column(
                column, justify="left" if column == "path" else "right", no_wrap=column == "path"
            )
        for path, row in rows.items():
            cells = [path]
            for c in CONNECTIONS:
                rps, base, peer = row[f"rps_{c}"], rows["direct"][f"rps_{c}"], rows["squid"][f"rps_{c}"]
                cpu = row[f"cpu_us_{c}"]
                cells += [
                    f"{rps:,.0f}",
                    f"{rps / base:.2f}x",
                    f"{rps / peer:.2f}x",
                    "-" if cpu is None else f"{cpu:.1f}",
                ]
            if dest == "nginx":
                added = (
                    "-" if path == "direct" else f"+{row['added_p50_ms']:.2f} / +{row['added_p99_ms']:.2f}"
                )
                cells += [added, f"{row['bulk_mb_s']:,.0f}"]
            table.add_row(*cells)
        console.print(table)
    table = Table(title=f"memory: RSS idle and with {IDLE_CONNECTIONS} idle keep-alive connections")
    for column in ("path", "process", "idle MB", "with conns MB", "KB/conn", "note"):
        table.add_column(column, justify="left" if column in ("path", "process", "note") else "right")
    for path, row in memory_rows.items():
        table.add_row(
            path, row["process"], f"{row['idle_rss_mb']}", f"{row['rss_mb_with_connections']}",
            f"{row['kb_per_connection']}", row["error"] or "",
        )  # fmt: skip
    console.print(table)
    for name, ok, figure in checks:
        console.print(f"{'MET    ' if ok else 'NOT MET'}  {name}: {figure}")
    if notes:
        console.print(f"[bold]machine too loaded to trust {len(notes)} measurement(s):[/bold]")
        for note in notes:
            console.print(f"  {note}")
    else:
        console.print(
            f"machine quiet: other processes stayed under {BUSY:.0%} of the CPU in every measurement"
        )


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dataplane", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3, help="times every path is measured (default 3)")
    parser.add_argument(
        "--duration", type=int, default=4, help="whole seconds per measurement, as wrk takes them (default 4)"
    )
    parser.add_argument(
        "--destinations", default="nginx,aiohttp", help="nginx (always) and optionally aiohttp (default both)"
    )
    parser.add_argument(
        "--idle-connections", type=int, default=IDLE_CONNECTIONS, help="for the memory figures (default 1000)"
    )
    parser.add_argument("--json", type=Path, help="also write every measurement and the summary as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds <= 0 or args.duration <= 0 or args.idle_connections <= 0:
        parser.error("--rounds, --duration and --idle-connections must be positive")
    destinations = ["nginx", *(d for d in args.destinations.split(",") if d and d != "nginx")]
    if set(destinations) - {"nginx", "aiohttp"}:
        parser.error("--destinations: nginx and aiohttp only")
    missing = missing_tools()
    if missing:
        print(
            f"bench: missing {', '.join(missing)}; install them "
            f"(Debian: apt-get install {' '.join(missing)}, "
            "or EGRESS_MESH_BENCH=1 .ci/setup)",
            file=sys.stderr,
        )
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        bench = Bench(Path(tmp), destinations)
        try:
            bench.start_all()
            memory_rows = memory(bench, args.idle_connections)
            for target in bench.targets.values():  # warm up every path (connections, caches, JIT-free)
                load.wrk(target, 8, 1, bench.workdir, bench.pids)
            results = rounds(bench, args, say)
        except RuntimeError as exc:  # wrk failed: its own words, no traceback
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.stop_all()
    summary = summarise(results, destinations)
    checks = goals(summary, memory_rows)
    notes = busy_rounds(results)
    report(summary, memory_rows, checks, notes, args)
    if args.json:
        document = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "rounds": args.rounds,
            "duration_s": args.duration,
            "summary": summary,
            "memory": memory_rows,
            "goals": [{"goal": n, "met": ok, "figure": f} for n, ok, f in checks],
            "untrusted": notes,
            "measurements": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    errors = [r for r in results if r.get("errors")]
    if any(r["requests"] == 0 for r in results if r["kind"] != "bulk"):
        print("bench: a path served no request", file=sys.stderr)
        return 1
    if errors:
        print(f"bench: {len(errors)} measurement(s) saw errors (see --json)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
