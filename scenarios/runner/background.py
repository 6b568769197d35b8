"""Background processes of a scenario: ``background`` starts a command in a pod and the scenario
goes on; ``stop`` ends it (when it still runs) and checks what it did.

The command runs through ``sh``, which writes its process id to a file in the container first, so
the harness can ask later whether it still runs and stop it on any backend (the blocking exec
call that started it sits in a thread of its own until the process ends).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from scenarios.clusters.base import Cluster, OpResult
from scenarios.format import BackgroundStep


def pid_file(name: str) -> str:
    return f"/tmp/egress-mesh-background-{name}.pid"


def start_argv(pidfile: str, command: Sequence[str]) -> list[str]:
    return ["sh", "-c", f'echo $$ > {pidfile} && exec "$@"', "sh", *command]


def alive_argv(pidfile: str) -> list[str]:
    return ["sh", "-c", f'kill -0 "$(cat {pidfile})" 2>/dev/null']


def stop_argv(pidfile: str) -> list[str]:
    return ["sh", "-c", f'kill -TERM "$(cat {pidfile})" 2>/dev/null; rm -f {pidfile}']


class BackgroundProcess:
    def __init__(self, cluster: Cluster, step: BackgroundStep) -> None:
        self.cluster = cluster
        self.step = step
        self.pidfile = pid_file(step.name)
        self.result: OpResult | None = None
        self._thread = threading.Thread(target=self._run, name=f"background {step.name}", daemon=True)

    def _exec(self, argv: list[str]) -> OpResult:
        return self.cluster.exec(self.step.namespace, self.step.selector, self.step.container, argv)

    def _run(self) -> None:
        try:
            self.result = self._exec(start_argv(self.pidfile, self.step.command))
        except Exception as exc:  # the backend failed: the stop step reports it
            self.result = OpResult("", 1, "", f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        self._thread.start()

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def started(self) -> bool:
        """The process has written its id (or already ended)."""
        return self.finished or self._exec(["test", "-s", self.pidfile]).ok

    def running(self) -> bool:
        return not self.finished and self._exec(alive_argv(self.pidfile)).ok

    def stop(self, timeout: float) -> OpResult | None:
        """End it (when it still runs) and wait up to ``timeout`` s; its result, None if it did not end."""
        if not self.finished:
            self._exec(stop_argv(self.pidfile))
        self._thread.join(timeout)
        return None if self._thread.is_alive() else self.result
