"""What each destination answered in a scenario, read from the runner's structured results: the
request steps' URLs and parsed responses, the gateway_log steps' parsed records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from mesh.api.hosts import normalise_host
from scenarios.format import RequestStep
from scenarios.runner import ScenarioResult, StepResult

#: records this much older than the scenario's start still count (clocks of host and pods differ)
CLOCK_SLACK = 1.0


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


def host_of(url_or_host: str) -> str:
    """``http://HttpBin.org:80/get`` or ``httpbin.org.:80`` -> ``httpbin.org``."""
    host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host.rsplit(":", 1)[0]
    return normalise_host(host or url_or_host)


def _when(value: str | None) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def records_since(records: list[dict[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
    """Records written at or after ``since`` (with some clock slack); records without a time are kept."""
    if since is None:
        return records
    kept = []
    for record in records:
        when = _when(record.get("request_time") or record.get("start_time"))
        if when is None or (since - when).total_seconds() <= CLOCK_SLACK:
            kept.append(record)
    return kept


def request_outcomes(result: StepResult) -> dict[str, Outcome]:
    """Destination host -> outcome for one request step (responses matched to URLs in order)."""
    if not isinstance(result.step, RequestStep) or not isinstance(result.actual, dict):
        return {}
    statuses = [int(r["status"]) for r in result.actual.get("responses") or []]
    outcomes = {}
    for i, url in enumerate(result.step.urls):
        if i < len(statuses):
            outcomes[host_of(url)] = Outcome(status=statuses[i])
        else:
            outcomes[host_of(url)] = Outcome(exit_code=result.exit_code)
    return outcomes


def logged_hosts(scenario: ScenarioResult) -> set[str] | None:
    """Hosts the gateway logged during the scenario, or None when no step read the gateway log."""
    steps = [s for s in scenario.steps if s.kind == "gateway_log" and not s.skipped]
    if not steps:
        return None
    since = _when(scenario.started)
    hosts = set()
    for step in steps:
        records = step.actual.get("records", []) if isinstance(step.actual, dict) else []
        hosts |= {host_of(r["host"]) for r in records_since(records, since) if r.get("host")}
    return hosts


def scenario_outcomes(scenario: ScenarioResult) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for step in scenario.steps:
        if step.kind == "request" and not step.skipped:
            outcomes.update(request_outcomes(step))
    if scenario.scenario.mode == "gateway":
        hosts = logged_hosts(scenario)
        if hosts is not None:
            for host, outcome in outcomes.items():
                outcome.logged = host in hosts
    return outcomes
