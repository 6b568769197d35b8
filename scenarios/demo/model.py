"""What the demo keeps of a run: the runner's own results, plus the few things only the demo shows
(a setup step seen before, where to look further when a step failed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from scenarios.clusters.base import OpResult
from scenarios.runner import ScenarioResult, StepResult


@dataclass
class StepNotes:
    #: a setup step already shown earlier in the run (rendered as one line)
    repeat: bool = False
    #: what a user can run to look further when the step failed
    hints: list[str] = field(default_factory=list)
    #: the last lines of the log the first hint shows
    log_tail: str = ""


@dataclass
class DemoRun:
    backend: str
    lang: str = "en"
    started: datetime | None = None
    #: the runner's results, in run order
    scenarios: list[ScenarioResult] = field(default_factory=list)
    #: what loading the images and installing the mesh ran (prepare's operations)
    preparation: list[OpResult] = field(default_factory=list)
    notes: dict[tuple[str, int], StepNotes] = field(default_factory=dict)

    def notes_of_step(self, scenario: str, index: int) -> StepNotes:
        return self.notes.setdefault((scenario, index), StepNotes())

    def notes_of(self, step: StepResult) -> StepNotes:
        return self.notes_of_step(step.scenario, step.index)

    @property
    def failed_setup(self) -> list[OpResult]:
        return [op for op in self.preparation if not op.ok]

    @property
    def failed_steps(self) -> list[StepResult]:
        return [step for scenario in self.scenarios for step in scenario.steps if step.failed]
