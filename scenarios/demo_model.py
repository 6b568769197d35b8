"""What the demo remembers of a run: scenarios, their steps, and what each request observed.

The live renderer, the summary matrix and the Markdown report all read these records, so a
recorded run (a test's fake one, or a real one) renders the same way everywhere.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

STATUS_LINE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})\b.*$")
GATEWAY_LOG_KINDS = frozenset({"gateway_log", "logs"})
REQUEST_KINDS = frozenset({"request"})


@dataclass
class StepView:
    scenario: str
    index: int
    kind: str
    #: the command as the article writes it (``kubectl ...``; inline manifests as a heredoc)
    command: str = ""
    #: what this backend actually ran (its OpResult.command), when that differs
    backend_command: str = ""
    narration: dict[str, str] | str | None = None
    title: dict[str, str] | str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    expected: Any = None
    actual: Any = None
    passed: bool | None = None
    skipped: str | None = None
    duration: float = 0.0
    #: the URLs a request step asked for (from the step, or parsed from the command)
    urls: list[str] = field(default_factory=list)
    #: what went wrong, one line per broken expectation
    problems: list[str] = field(default_factory=list)
    #: what a user can run to look further when the step failed
    hints: list[str] = field(default_factory=list)
    #: the last lines of the log the first hint shows
    log_tail: str = ""
    attempts: int = 1
    #: a setup step already shown earlier in the run (rendered as one line)
    repeat: bool = False

    @property
    def failed(self) -> bool:
        return self.passed is False and not self.skipped


@dataclass
class ScenarioView:
    name: str
    title: dict[str, str] | str | None = None
    started: datetime | None = None
    steps: list[StepView] = field(default_factory=list)
    skipped: str | None = None
    #: the scenario broke before its steps could run (e.g. the backend's reset failed)
    error: str | None = None

    @property
    def failed_steps(self) -> list[StepView]:
        return [s for s in self.steps if s.failed]

    @property
    def mode(self) -> str | None:
        return classify(self.name)[0]

    @property
    def policy(self) -> str | None:
        return classify(self.name)[1]


@dataclass
class DemoRun:
    backend: str
    lang: str = "en"
    started: datetime | None = None
    scenarios: list[ScenarioView] = field(default_factory=list)
    #: long operations before the scenarios (image builds, install) with their commands and results
    preparation: list[StepView] = field(default_factory=list)

    @property
    def failed_steps(self) -> list[StepView]:
        prep = [s for s in self.preparation if s.failed]
        return prep + [s for sc in self.scenarios for s in sc.failed_steps]


def classify(scenario_name: str) -> tuple[str | None, str | None]:
    """(mode, policy) of a catalog scenario from its name: ``gateway-policy`` -> (gateway, policy)."""
    name = scenario_name.lower()
    if "disabled" in name:
        return "disabled", None
    mode = "gateway" if "gateway" in name else "passthrough" if "passthrough" in name else None
    policy = "permissive" if "permissive" in name else "policy" if "policy" in name else None
    return mode, policy


def urls_in(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [w for w in words if w.startswith(("http://", "https://"))]


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or url).lower().rstrip(".")


def statuses_in(curl_output: str) -> list[int]:
    """Status codes of the responses in ``curl -sI``/``-si`` output, in order."""
    return [int(m.group(1)) for line in curl_output.splitlines() if (m := STATUS_LINE.match(line.strip()))]


def json_records(text: str) -> list[dict[str, Any]]:
    """The JSON-object lines of a log (other lines are skipped)."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def _record_time(record: dict[str, Any]) -> datetime | None:
    stamp = record.get("request_time") or record.get("start_time")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def records_since(records: list[dict[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
    """Records written at or after ``since`` (1 s of clock slack); records without a time are kept."""
    if since is None:
        return records
    kept = []
    for record in records:
        when = _record_time(record)
        if when is None or (since - when).total_seconds() <= 1.0:
            kept.append(record)
    return kept


@dataclass
class Outcome:
    """What one destination answered in one scenario."""

    status: int | None = None
    exit_code: int | None = None
    #: True/False when the scenario looked at the gateway log, None when it did not
    logged: bool | None = None

    def label(self) -> str:
        if self.status is not None:
            return str(self.status)
        if self.exit_code not in (None, 0):
            return f"exit {self.exit_code}"
        return "no response"

    def matches(self, other: Outcome) -> bool:
        if self.label() != other.label():
            return False
        return other.logged is None or self.logged is None or self.logged == other.logged


def request_outcomes(step: StepView) -> dict[str, Outcome]:
    """Destination host -> outcome for one request step (responses are matched to URLs in order)."""
    urls = step.urls or urls_in(step.command)
    parsed = step.actual.get("responses") if isinstance(step.actual, dict) else None
    if isinstance(parsed, list) and all(isinstance(r, dict) and "status" in r for r in parsed):
        statuses = [int(r["status"]) for r in parsed]
    else:
        statuses = statuses_in(step.stdout)
    outcomes: dict[str, Outcome] = {}
    for i, url in enumerate(urls):
        if i < len(statuses):
            outcomes[host_of(url)] = Outcome(status=statuses[i])
        else:
            outcomes[host_of(url)] = Outcome(exit_code=step.exit_code)
    return outcomes


def logged_hosts(scenario: ScenarioView) -> set[str] | None:
    """Hosts the gateway logged during the scenario, or None when no step read the gateway log."""
    log_steps = [s for s in scenario.steps if s.kind in GATEWAY_LOG_KINDS and not s.skipped]
    if not log_steps:
        return None
    hosts: set[str] = set()
    for step in log_steps:
        for record in records_since(json_records(step.stdout), scenario.started):
            host = record.get("host")
            if isinstance(host, str) and host:
                hosts.add(host.split(":")[0].lower().rstrip("."))
    return hosts


def scenario_outcomes(scenario: ScenarioView) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for step in scenario.steps:
        if step.kind in REQUEST_KINDS and not step.skipped:
            outcomes.update(request_outcomes(step))
    if scenario.mode == "gateway":
        hosts = logged_hosts(scenario)
        if hosts is not None:
            for host, outcome in outcomes.items():
                outcome.logged = host in hosts
    return outcomes
