"""The live demo, for real: ``python -m scenarios demo --backend docker --auto --report FILE.md``.

Runs as a user would (a subprocess, no TTY). Images are content-tagged, so when the session's
e2e cluster already built them this run reuses them. The demo starts its own Docker "cluster"
(containers labelled with their own run id) and removes it at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.backends("docker")]

ROOT = Path(__file__).resolve().parents[2]
ARTICLE_MATRIX = [
    "| Egress disabled | - | exit 7 ✓ | exit 7 ✓ |",
    "| Sidecar passthrough | Permissive mode | 200 ✓ | 200 ✓ |",
    "| Sidecar passthrough | Policy mode | 200 ✓ | 403 ✓ |",
    "| Egress gateway | Permissive mode | 200, logged by gateway ✓ | 200, logged by gateway ✓ |",
    "| Egress gateway | Policy mode | 200, logged by gateway ✓ | 403, not logged ✓ |",
]


def docker_unavailable() -> str | None:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    report = tmp_path_factory.mktemp("demo") / "demo.md"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "scenarios", "demo", "--backend", "docker", "--auto", "--report", str(report)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return proc, report


def test_demo_runs_the_article_and_exits_0(demo_run):
    proc, _ = demo_run
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "All steps passed" in proc.stdout
    assert not re.search(r"\x1b\[", proc.stdout), "NO_COLOR output must carry no escape codes"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_demo_report_has_the_articles_matrix(demo_run):
    proc, report = demo_run
    assert report.exists(), proc.stdout[-3000:]
    text = report.read_text(encoding="utf-8")
    missing = [row for row in ARTICLE_MATRIX if row not in text]
    assert not missing, f"rows not in the report: {missing}\n{text[:2000]}"


def test_demo_shows_the_articles_outputs(demo_run):
    proc, report = demo_run
    text = report.read_text(encoding="utf-8")
    assert "command terminated with exit code 7" in proc.stdout
    assert "HTTP/1.1 403 Forbidden" in text and "Access denied" in text
    assert "kubectl patch meshconfig osm-mesh-config -n osm-system" in text
    # the gateway's access log, pretty-printed as jq does, with the article's fields
    record = re.search(r'\{\n  "connection_id": "[0-9a-f]{16}",\n  "request_time": "[^"]+Z",\n', text)
    assert record, "no jq-style gateway log record in the report"
    assert '  "host": "httpbin.org",\n  "path": "/get",\n  "method": "HEAD"' in text
