"""Scenarios outside the article's catalog (``docs/examples/*.yaml``), on the session's cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.console import Console

from scenarios.format import load_file
from scenarios.runner import ConsoleObserver, Runner

pytestmark = pytest.mark.e2e
EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("*.yaml"))


def test_egress_matches_example_exists():
    assert "egress-matches.yaml" in [p.name for p in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_scenario(e2e_report, cluster, path):
    scenario = load_file(path)
    result = Runner(
        cluster, [ConsoleObserver(Console(file=sys.stdout, highlight=False, soft_wrap=True))]
    ).run_scenario(scenario)
    e2e_report.scenarios.append(result)
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.passed, result.explain()
    skipped = [f"step {s.index} ({s.kind}): {s.skipped}" for s in result.steps if s.skipped]
    assert not skipped, "steps this backend could not run:\n" + "\n".join(skipped)
