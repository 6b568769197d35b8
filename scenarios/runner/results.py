"""What a run produced, as data: one ``StepResult`` per step (JSON-ready ``expected``/``actual``),
grouped per scenario and per run; and the ``Observer`` interface that sees them as they happen.

Observers (the console printer, the demo, the pytest plugin) get, in order: ``run_started``, then
per scenario ``scenario_started``, per step ``step_started`` (with the article-style ``kubectl``
command), ``step_attempt`` for every retry of a step that waits for its expectation,
``step_finished``, ``scenario_finished``, and finally ``run_finished``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios.clusters.base import Cluster
from scenarios.format import Scenario, Step, Text


@dataclass
class StepResult:
    scenario: str
    index: int
    kind: str
    title: Text | None
    narration: Text
    #: the command as the article writes it (kubectl form)
    kubectl: str
    #: what this backend ran (its OpResult.command), one line per operation
    command: str = ""
    expected: Any = None
    actual: Any = None
    passed: bool = False
    skipped: str | None = None
    duration: float = 0.0
    #: what went wrong, one line per broken expectation
    problems: list[str] = field(default_factory=list)
    #: raw output for display (stdout, then stderr)
    output: str = ""
    attempts: int = 1
    #: the step as it ran (values of earlier ``set`` steps filled in)
    step: Step | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "failed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def exit_code(self) -> int | None:
        return self.actual.get("exit_code") if isinstance(self.actual, dict) else None


@dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)
    #: the scenario did not run at all (a capability the backend lacks)
    skipped: str | None = None
    #: the scenario broke before its steps (e.g. reset failed)
    error: str | None = None
    duration: float = 0.0
    #: when it started (ISO 8601 UTC)
    started: str = ""

    @property
    def passed(self) -> bool:
        return self.error is None and not any(s.failed for s in self.steps)

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "failed"

    def first_failure(self) -> StepResult | None:
        return next((s for s in self.steps if s.failed), None)

    def explain(self) -> str:
        """Why it failed: each failing step with its command, expected and actual."""
        if self.error:
            return f"{self.scenario.name}: {self.error}"
        lines = []
        for step in self.steps:
            if step.failed:
                first, *rest = step.kubectl.splitlines() or [""]
                lines += [
                    f"{self.scenario.name} step {step.index} ({step.kind}) failed: {step.narration.en}",
                    f"  command:  {first}",
                    *(f"            {line}" for line in rest),
                ]
                if step.command and step.command != step.kubectl:
                    lines.append(f"  ran:      {step.command}")
                lines += [
                    f"  expected: {json.dumps(step.expected, ensure_ascii=False)}",
                    f"  actual:   {json.dumps(step.actual, ensure_ascii=False)}",
                    *(f"  - {p}" for p in step.problems),
                ]
        return "\n".join(lines)


@dataclass
class RunResult:
    backend: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    started: str = ""
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.status != "failed" for s in self.scenarios)


class Observer:
    """Receives the runner's events; override what you need."""

    def run_started(self, scenarios: Sequence[Scenario], cluster: Cluster) -> None: ...

    def scenario_started(self, scenario: Scenario) -> None: ...

    def step_started(self, scenario: Scenario, step: Step, kubectl: str) -> None: ...

    def step_attempt(self, scenario: Scenario, step: Step, attempt: int, result: StepResult) -> None:
        """A retried step did not pass yet (``result`` is that attempt's); it will try again. A log
        step that passed on an absence too early to count has one problem saying it reads again."""

    def step_finished(self, scenario: Scenario, step: Step, result: StepResult) -> None: ...

    def scenario_finished(self, scenario: Scenario, result: ScenarioResult) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...
