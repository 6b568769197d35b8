"""The JSON report of a run (``python -m scenarios run --report FILE.json``), version 1.

Shape::

    {"version": 1, "backend": "docker", "started": "...", "duration": 41.2, "passed": true,
     "scenarios": [{"name", "title", "status", "passed", "skipped", "error", "duration", "steps"}],
     "steps": [{"scenario", "index", "kind", "title", "narration", "kubectl", "command",
                "expected", "actual", "pass", "status", "problems", "duration", "attempts",
                "skipped"}]}

``steps`` is flat (every scenario's steps in order); ``kubectl`` is the command as the article
writes it, ``command`` what this backend actually ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scenarios.runner import RunResult, ScenarioResult, StepResult

REPORT_VERSION = 1


def step_dict(step: StepResult) -> dict[str, Any]:
    return {
        "scenario": step.scenario,
        "index": step.index,
        "kind": step.kind,
        "title": step.title.to_dict() if step.title else None,
        "narration": step.narration.to_dict(),
        "kubectl": step.kubectl,
        "command": step.command,
        "expected": step.expected,
        "actual": step.actual,
        "pass": step.passed,
        "status": step.status,
        "problems": step.problems,
        "duration": round(step.duration, 3),
        "attempts": step.attempts,
        "skipped": step.skipped,
    }


def scenario_dict(result: ScenarioResult) -> dict[str, Any]:
    scenario = result.scenario
    return {
        "name": scenario.name,
        "title": scenario.title.to_dict(),
        "file": str(scenario.path) if scenario.path else None,
        "status": result.status,
        "passed": result.passed,
        "skipped": result.skipped,
        "error": result.error,
        "duration": round(result.duration, 3),
        "steps": len(result.steps),
    }


def to_dict(result: RunResult) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "backend": result.backend,
        "started": result.started,
        "duration": round(result.duration, 3),
        "passed": result.passed,
        "scenarios": [scenario_dict(s) for s in result.scenarios],
        "steps": [step_dict(step) for s in result.scenarios for step in s.steps],
    }


def write(result: RunResult, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
