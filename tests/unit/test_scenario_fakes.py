"""An in-memory ``Cluster`` for the runner and CLI tests: records calls, answers canned results.

No tests here; other ``test_scenario_*`` modules import ``FakeCluster``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scenarios.clusters.base import BackendOptions, Cluster, MeshOptions, OpResult, Unsupported

Answer = OpResult | Callable[..., OpResult] | BaseException


@dataclass
class Call:
    op: str
    args: tuple

    def __repr__(self) -> str:
        return f"{self.op}{self.args!r}"


@dataclass
class FakeCluster(Cluster):
    """Answers each operation from ``answers[op]``: an OpResult, a list of them (one per call, the
    last one repeating), a callable ``(*args) -> OpResult`` or an exception to raise."""

    options: BackendOptions = field(default_factory=BackendOptions)
    answers: dict[str, Answer | list[Answer]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    ips: dict[tuple[str, str], str] = field(default_factory=dict)
    name: str = "fake"
    capabilities: frozenset[str] = frozenset({"gateway-log"})

    def _answer(self, op: str, *args) -> OpResult:
        self.calls.append(Call(op, args))
        answer = self.answers.get(op, OpResult(f"fake {op}"))
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(*args)
        return answer

    def ops(self, op: str) -> list[Call]:
        return [c for c in self.calls if c.op == op]

    def up(self) -> None:
        self.calls.append(Call("up", ()))

    def down(self, keep: bool = False) -> None:
        self.calls.append(Call("down", (keep,)))

    def load_images(self, images: Sequence[str]) -> list[OpResult]:
        return [self._answer("load_images", tuple(images))]

    def install_mesh(self, options: MeshOptions) -> list[OpResult]:
        return [self._answer("install_mesh", options)]

    def reset(self) -> None:
        self._answer("reset")

    def apply(self, manifest: str, namespace: str | None = None) -> OpResult:
        return self._answer("apply", manifest, namespace)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> OpResult:
        return self._answer("delete", kind, name, namespace)

    def patch(self, kind, name, namespace, patch, patch_type="merge") -> OpResult:
        return self._answer("patch", kind, name, namespace, patch, patch_type)

    def run(self, argv: Sequence[str]) -> OpResult:
        return self._answer("run", tuple(argv))

    def exec(self, namespace: str, selector: str, container: str, argv: Sequence[str]) -> OpResult:
        return self._answer("exec", namespace, selector, container, tuple(argv))

    def logs(self, namespace: str, selector: str, container: str | None = None) -> OpResult:
        return self._answer("logs", namespace, selector, container)

    def pod_ip(self, namespace: str, selector: str) -> str:
        self.calls.append(Call("pod_ip", (namespace, selector)))
        return self.ips.get((namespace, selector), "10.0.0.1")

    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        return self._answer("wait_ready", namespace, selector, timeout)


def unsupported(*_args) -> OpResult:
    raise Unsupported("not on this backend")
