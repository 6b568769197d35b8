"""What the plugin keeps for one pytest session: the scenario results for ``--report``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from scenarios.runner import RunResult


@dataclass
class SessionState:
    backend: str
    run: RunResult = field(init=False)
    _start: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.run = RunResult(backend=self.backend, started=datetime.now(UTC).isoformat(timespec="seconds"))

    def finished(self) -> RunResult:
        self.run.duration = time.monotonic() - self._start
        return self.run


STATE = pytest.StashKey[SessionState]()
