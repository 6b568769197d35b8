"""``python -m benchmarks.dataplane`` (``nox -s bench``) end to end, in a short run (one round of
one second): every path serves requests, each proxy's CPU is charged to its path, the report and
``--json`` carry the goal lines. Needs the benchmark's tools (nginx, squid, tinyproxy, wrk:
``EGRESS_MESH_BENCH=1 .ci/setup``); CI does not install them, so there it skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.dataplane import PATHS, PEER_GATEWAY, PROXIES
from benchmarks.peers import missing_tools

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    bool(missing_tools()), reason=f"benchmark tools missing: {', '.join(missing_tools())}"
)


def test_a_short_benchmark_run_measures_every_path(tmp_path: Path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "benchmarks.dataplane", "--rounds", "1", "--duration", "1"]
    command += ["--destinations", "nginx", "--idle-connections", "20", "--json", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    document = json.loads(out.read_text())

    throughput = [m for m in document["measurements"] if m["kind"] == "throughput"]
    assert {m["path"] for m in throughput} == set(PATHS)
    for m in throughput:
        assert m["requests"] > 0, m
        if m["path"] not in ("direct", "tinyproxy"):  # tinyproxy drops keep-alive connections
            assert m["errors"] == 0, m
    rows = document["summary"]["nginx"]
    for path in ("sidecar + gateway", PEER_GATEWAY):  # both proxies' CPU: more than the sidecar's
        assert rows[path]["cpu_us_64"] > rows["sidecar permissive"]["cpu_us_64"], rows
        assert rows[path]["bulk_mb_s"] > 0
    assert set(document["memory"]) == set(PROXIES)
    assert document["memory"]["sidecar permissive"]["connections"] == 20

    goals = {g["goal"]: g["figure"] for g in document["goals"]}
    assert len(goals) == 14
    assert "with squid as the gateway" in goals["sidecar + gateway at 64 conns >= 0.7x sidecar"]
    assert "sidecar + squid gateway" in run.stdout and "MET" in run.stdout
