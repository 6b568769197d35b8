"""Step-level helpers on a ``Cluster``, results as data: what a hand-written test needs.

The pytest plugin hands one of these out as the ``mesh`` fixture (after resetting the session's
cluster to "mesh just installed")::

    def test_only_httpbin_leaves(mesh):
        mesh.run(["kubectl", "create", "namespace", "curl"])
        ...
        reply = mesh.request("curl", "app=curl", "curl", ["http://httpbin.org/get", "http://httpstat.us/200"])
        assert reply.statuses == [200, 403]
        assert reply.responses[1].header("content-length") == "13"

Setup operations (``apply``, ``delete``, ``patch``, ``run``, ``wait_ready``) raise ``CommandFailed``
(an AssertionError naming the command, its exit code and output) unless ``check=False``. Observations
(``request``, ``exec``, ``pod_log``, ``gateway_records``) return what came back, for the test to judge;
since a change reaches the sidecars within about a second, each takes ``until=`` (a predicate on
what came back) and then repeats until it holds or ``timeout`` seconds pass, returning the last.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from mesh.api import accesslog
from scenarios import curl
from scenarios.clusters.base import Cluster, OpResult
from scenarios.format.common import DEFAULT_CURL_ARGS
from scenarios.names import CURL_NAMESPACE, CURL_SELECTOR, GATEWAY_NAMESPACE, GATEWAY_SELECTOR, MANIFESTS_DIR

#: how long an observation with ``until=`` keeps trying, and how often
DEFAULT_TIMEOUT = 15.0
POLL_INTERVAL = 0.3
T = TypeVar("T")


def repeat_until(observe: Callable[[], T], until: Callable[[T], bool] | None, timeout: float) -> T:
    """``observe()`` once, or (with ``until``) until ``until(result)`` or ``timeout``; the last result."""
    if until is None:
        return observe()
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(POLL_INTERVAL),
        retry=retry_if_result(lambda result: not until(result)),
        retry_error_callback=lambda state: state.outcome.result(),
    )
    return retrying(observe)


class CommandFailed(AssertionError):
    """A setup operation exited non-zero; the message has the command and what it printed."""

    def __init__(self, op: OpResult, expected_exit_code: int = 0) -> None:
        self.op = op
        output = "\n".join(part.strip() for part in (op.stdout, op.stderr) if part.strip())
        super().__init__(
            f"{op.command}\nexited {op.exit_code}, expected {expected_exit_code}"
            + (f"\n{output}" if output else "")
        )


@dataclass
class Reply:
    """What ``curl URL...`` printed in a pod: its exit code and the responses, in URL order."""

    op: OpResult
    responses: list[curl.Response]

    @property
    def exit_code(self) -> int:
        return self.op.exit_code

    @property
    def command(self) -> str:
        return self.op.command

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exit_code": self.exit_code,
            "responses": [r.to_dict() for r in self.responses],
        }
        if self.op.stderr.strip():
            out["stderr"] = self.op.stderr.strip()[-2000:]
        return out


def json_object(line: str) -> dict[str, Any] | None:
    """The JSON object on a log line, or None when the line is not one."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class PodLog:
    """A pod's (or one container's) log: the raw lines and, for JSON lines, the parsed records."""

    op: OpResult
    lines: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The lines that are JSON objects, parsed (the mesh's components log JSON lines)."""
        return [r for r in (json_object(line) for line in self.lines) if r is not None]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class GatewayRecords:
    """The egress gateway's access log, parsed and checked against its contract (mesh.api.accesslog)."""

    op: OpResult
    #: one per HTTP request (the article's fields: connection_id, request_time, source_address, ...)
    requests: list[dict[str, Any]]
    #: one per connection (id, start_time, destination_address, ..., serverNames for TLS)
    connections: list[dict[str, Any]]

    def hosts(self) -> list[str]:
        return [r["host"] for r in self.requests]


class MeshHarness:
    """One operation per method on ``cluster``; see the module docstring."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    # setup --------------------------------------------------------------------------------------------
    def apply(self, manifest: str | Path, namespace: str | None = None, *, check: bool = True) -> OpResult:
        """``kubectl apply [-n NS] -f -``; ``manifest`` is YAML text or a path to a file."""
        text = manifest.read_text(encoding="utf-8") if isinstance(manifest, Path) else manifest
        return self._checked(self.cluster.apply(text, namespace), check)

    def delete(self, kind: str, name: str, namespace: str | None = None, *, check: bool = True) -> OpResult:
        return self._checked(self.cluster.delete(kind, name, namespace), check)

    def patch(
        self, kind: str, name: str, namespace: str | None, patch: dict[str, Any], *, check: bool = True
    ) -> OpResult:
        """``kubectl patch KIND NAME -n NS -p JSON --type=merge``."""
        return self._checked(self.cluster.patch(kind, name, namespace, patch, "merge"), check)

    def run(self, argv: Sequence[str], *, exit_code: int = 0, check: bool = True) -> OpResult:
        """A ``kubectl``/``osm`` command line (``["osm", "namespace", "add", "curl"]``)."""
        return self._checked(self.cluster.run(list(argv)), check, exit_code)

    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        """Until the pods are ready; TimeoutError (saying what is not ready and why) otherwise."""
        return self._checked(self.cluster.wait_ready(namespace, selector, timeout), True)

    def deploy_sample_client(self) -> None:
        """The article's sample app: namespace ``curl`` in the mesh, the ``curl`` pod ready."""
        self.run(["kubectl", "create", "namespace", CURL_NAMESPACE])
        self.run(["osm", "namespace", "add", CURL_NAMESPACE])
        self.apply(MANIFESTS_DIR / "curl.yaml", CURL_NAMESPACE)
        self.wait_ready(CURL_NAMESPACE, CURL_SELECTOR)

    # observations -------------------------------------------------------------------------------------
    def request(
        self,
        namespace: str,
        selector: str,
        container: str,
        urls: Sequence[str],
        curl_args: Sequence[str] = DEFAULT_CURL_ARGS,
        *,
        until: Callable[[Reply], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reply:
        """``curl CURL_ARGS URL...`` in the pod's container (the article's ``curl -sI``), parsed."""

        def once() -> Reply:
            op = self.cluster.exec(namespace, selector, container, ["curl", *curl_args, *urls])
            return Reply(op, curl.parse(op.stdout, head=curl.sends_head(curl_args)))

        return repeat_until(once, until, timeout)

    def exec(
        self,
        namespace: str,
        selector: str,
        container: str,
        argv: Sequence[str],
        *,
        until: Callable[[OpResult], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> OpResult:
        return repeat_until(
            lambda: self.cluster.exec(namespace, selector, container, list(argv)), until, timeout
        )

    def pod_ip(self, namespace: str, selector: str) -> str:
        return self.cluster.pod_ip(namespace, selector)

    def pod_log(
        self,
        namespace: str,
        selector: str,
        container: str | None = None,
        *,
        until: Callable[[PodLog], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PodLog:
        """The log of the first pod matching ``selector`` (one container's with ``container``)."""

        def once() -> PodLog:
            op = self.cluster.logs(namespace, selector, container)
            if not op.ok:
                raise CommandFailed(op)
            return PodLog(op, op.stdout.splitlines())

        return repeat_until(once, until, timeout)

    def gateway_records(
        self,
        namespace: str = GATEWAY_NAMESPACE,
        selector: str = GATEWAY_SELECTOR,
        container: str | None = None,
        *,
        until: Callable[[GatewayRecords], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> GatewayRecords:
        """The gateway's request and connection records; a record breaking the contract is an error."""

        def once() -> GatewayRecords:
            log = self.pod_log(namespace, selector, container)
            requests, connections = accesslog.parse_lines(log.text)
            for record in [*requests, *connections]:
                accesslog.validate(record)
            return GatewayRecords(log.op, requests, connections)

        return repeat_until(once, until, timeout)

    @staticmethod
    def _checked(op: OpResult, check: bool, exit_code: int = 0) -> OpResult:
        if check and op.exit_code != exit_code:
            raise CommandFailed(op, exit_code)
        return op
