"""Running one scenario for pytest and turning its result into a pass, a skip or a failure."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console

from scenarios.clusters.base import Cluster
from scenarios.format import Scenario
from scenarios.runner import ConsoleObserver, Runner, RunResult, ScenarioResult


class ScenarioFailed(AssertionError):
    """A scenario's expectation did not hold; the message is the failing steps with their command,
    expected and actual (``ScenarioResult.explain``)."""

    def __init__(self, result: ScenarioResult, message: str | None = None) -> None:
        self.result = result
        super().__init__(message or result.explain())


def run_and_record(cluster: Cluster, scenario: Scenario, run: RunResult) -> ScenarioResult:
    """Run ``scenario`` (its steps printed, so pytest shows them with a failure) and keep its result."""
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True, color_system=None)
    result = Runner(cluster, [ConsoleObserver(console)]).run_scenario(scenario)
    run.scenarios.append(result)
    return result


def check_result(result: ScenarioResult) -> None:
    """Skip when the backend cannot run the scenario; fail when a step failed or could not run."""
    if result.skipped:
        pytest.skip(result.skipped)
    if not result.passed:
        raise ScenarioFailed(result)
    skipped = [f"step {s.index} ({s.kind}): {s.skipped}" for s in result.steps if s.skipped]
    if skipped:
        raise ScenarioFailed(result, "steps this backend could not run:\n" + "\n".join(skipped))
