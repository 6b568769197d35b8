"""The article's catalog, one test per scenario, on the session's cluster (``--backend``)."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console

from scenarios.format import catalog
from scenarios.runner import ConsoleObserver, Runner

pytestmark = pytest.mark.e2e
SCENARIOS = catalog()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_article_scenario(e2e_report, cluster, scenario):
    # the printed steps are shown by pytest when the test fails
    result = Runner(
        cluster, [ConsoleObserver(Console(file=sys.stdout, highlight=False, soft_wrap=True))]
    ).run_scenario(scenario)
    e2e_report.scenarios.append(result)
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.passed, result.explain()
    skipped = [f"step {s.index} ({s.kind}): {s.skipped}" for s in result.steps if s.skipped]
    assert not skipped, "steps this backend could not run:\n" + "\n".join(skipped)
