"""The format's additions for outside authors (issue 12): negative output checks, values carried
between steps, any pod's log lines, background processes. Run on an in-memory cluster."""

from __future__ import annotations

import json
import threading

import pytest

from scenarios.clusters.base import OpResult
from scenarios.format import ScenarioError, parse
from scenarios.runner import SETTLE_TIME, Runner
from tests.unit.test_scenario_fakes import FakeCluster

CURL = {"namespace": "curl", "selector": "app=curl", "container": "curl"}
OK = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"


def scenario(*steps: dict):
    return parse({"name": "t", "title": "test", "steps": [{"narration": "n", **s} for s in steps]}, "t.yaml")


def run(cluster: FakeCluster, sc):
    return Runner(cluster, poll_interval=0.01).run([sc]).scenarios[0]


def error(*steps: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario(*steps)
    return str(info.value)


# negative checks on exec output -------------------------------------------------------------------
def test_exec_output_that_must_not_appear():
    cluster = FakeCluster(
        answers={"exec": OpResult("docker exec ...", 0, "HTTP/1.1 403 Forbidden\nAccess denied\n")}
    )
    exec_ = {"exec": {**CURL, "command": ["curl", "-si", "http://evil.example/"]}}
    passed = run(cluster, scenario({"exec": {**exec_["exec"], "stdout_not_contains": ["200 OK", "secret"]}}))
    assert passed.passed
    failed = run(
        cluster,
        scenario(
            {
                "exec": {
                    **exec_["exec"],
                    "stdout_not_contains": "Access denied",
                    "stdout_not_matches": r"^HTTP/1\.1 4\d\d",
                }
            }
        ),
    )
    step = failed.steps[0]
    assert step.status == "failed"
    assert step.problems == [
        "stdout contains 'Access denied'",
        "stdout matches '^HTTP/1\\\\.1 4\\\\d\\\\d': 'HTTP/1.1 403'",
    ]
    assert step.expected == {
        "exit_code": 0,
        "stdout_not_contains": ["Access denied"],
        "stdout_not_matches": r"^HTTP/1\.1 4\d\d",
    }


def test_a_regex_that_does_not_compile_is_a_load_error_naming_the_key():
    message = error({"exec": {**CURL, "command": ["true"], "stdout_not_matches": "(unclosed"}})
    assert (
        "t.yaml: step 1 (exec): exec/stdout_not_matches: '(unclosed' is not a valid regular expression"
        in message
    )


# values carried between steps ----------------------------------------------------------------------
def test_set_values_are_used_by_later_steps():
    def exec_(namespace, selector, container, argv):
        if argv[:2] == ("getent", "hosts"):
            return OpResult("docker exec c getent hosts httpbin.org", 0, "172.30.0.7      httpbin.org\n")
        if argv == ("hostname",):
            return OpResult("docker exec c hostname", 0, "curl-5d9f\n")
        if argv == ("ip", "-o", "addr"):
            return OpResult("docker exec c ip -o addr", 0, "2: eth0    inet 10.9.0.4/16 brd\n")
        return OpResult("docker exec c " + " ".join(argv), 0, OK)

    cluster = FakeCluster(answers={"exec": exec_}, ips={("curl", "app=curl"): "10.42.0.17"})
    sc = scenario(
        {
            "set": {
                "client_ip": {"pod_ip": {"namespace": "curl", "selector": "app=curl"}},
                "httpbin_ip": {"resolve": {"name": "httpbin.org", **CURL}},
                "pod_name": {"exec": {**CURL, "command": ["hostname"]}},
                "eth0": {"exec": {**CURL, "command": ["ip", "-o", "addr"], "match": r"inet (\S+)/"}},
                "port": 80,
            }
        },
        {
            "request": {
                **CURL,
                "urls": ["http://{{httpbin_ip}}:{{port}}/get"],
                "curl_args": ["-sI", "-H", "Host: httpbin.org", "-H", "X-From: {{ pod_name }}"],
                "expect": [{"status": 200}],
            }
        },
        {"exec": {**CURL, "command": ["echo", "{{client_ip}} {{eth0}}"]}},
    )
    result = run(cluster, sc)
    assert result.passed, result.explain()
    first, request, echo = result.steps
    assert first.actual == {
        "set": {
            "client_ip": "10.42.0.17",
            "httpbin_ip": "172.30.0.7",
            "pod_name": "curl-5d9f",
            "eth0": "10.9.0.4",
            "port": "80",
        }
    }
    exec_calls = [c.args[3] for c in cluster.ops("exec")]
    assert (
        "curl",
        "-sI",
        "-H",
        "Host: httpbin.org",
        "-H",
        "X-From: curl-5d9f",
        "http://172.30.0.7:80/get",
    ) in exec_calls
    assert ("echo", "10.42.0.17 10.9.0.4") in exec_calls
    assert "http://172.30.0.7:80/get" in request.kubectl
    assert echo.kubectl.endswith("-- echo '10.42.0.17 10.9.0.4'")
    assert first.kubectl.splitlines()[0] == (
        "client_ip=\"$(kubectl get pod -n curl -l app=curl -o jsonpath='{.items[0].status.podIP}')\""
    )


def test_a_value_that_cannot_be_captured_stops_the_scenario_naming_it():
    cluster = FakeCluster(answers={"exec": OpResult("docker exec c getent hosts nowhere.example", 2, "", "")})
    sc = scenario(
        {"set": {"ip": {"resolve": {"name": "nowhere.example", **CURL}}}},
        {"exec": {**CURL, "command": ["echo", "{{ip}}"]}},
    )
    first, second = run(cluster, sc).steps
    assert first.status == "failed" and first.problems[0].startswith("ip: nowhere.example does not resolve")
    assert second.status == "skipped"


def test_a_variable_used_before_it_is_set_is_a_load_error():
    message = error(
        {"exec": {**CURL, "command": ["curl", "http://{{httpbin_ip}}/"]}},
        {"set": {"httpbin_ip": "1.2.3.4"}},
    )
    assert (
        "t.yaml: step 1 (exec): exec/command/1: {{httpbin_ip}} is not set by an earlier set step" in message
    )
    assert "step 1 (set): set/1-bad: '1-bad' does not match" in error({"set": {"1-bad": "x"}})


# any pod's log lines -----------------------------------------------------------------------------
SIDECAR_LOG = [
    "sidecar starting",
    json.dumps({"event": "config", "version": "v1"}),
    json.dumps({"event": "decision", "host": "httpstat.us", "decision": "deny", "client": "10.42.0.17:4000"}),
    json.dumps({"event": "decision", "host": "httpbin.org", "decision": "allow"}),
]


def test_log_lines_present_and_absent_as_text_regex_or_records():
    def sidecar_log() -> list[OpResult]:  # no pod when the scenario starts, then its log
        return [
            OpResult("docker logs x", 1, "", "no pod"),
            OpResult("docker logs sidecar", 0, "\n".join(SIDECAR_LOG)),
        ]

    cluster = FakeCluster(answers={"logs": sidecar_log()}, ips={("curl", "app=curl"): "10.42.0.17"})
    log = {
        "namespace": "curl",
        "selector": "app=curl",
        "container": "sidecar",
        "present": [
            {"text": "sidecar starting"},
            {"matches": r'"version": "v\d+"'},
            {"record": {"event": "decision", "decision": "deny", "host": "httpstat.us"}, "count": 1},
        ],
        "absent": [{"record": {"decision": "deny", "host": "httpbin.org"}}, {"text": "Traceback"}],
        "timeout": 0.2,
    }
    result = run(cluster, scenario({"log": log}))
    assert result.passed, result.explain()
    assert cluster.ops("logs")[0].args == ("curl", "app=curl", "sidecar")
    lookup = "$(kubectl get pod -n curl -l app=curl -o jsonpath='{.items..metadata.name}')"
    assert result.steps[0].kubectl == f'kubectl logs -n curl "{lookup}" -c sidecar'

    log["absent"] = [{"record": {"decision": "deny"}}, {"matches": "^sidecar"}]
    log["present"] = [{"text": "listening"}, {"record": {"decision": "allow"}, "count": 2}]
    step = run(FakeCluster(answers={"logs": sidecar_log()}), scenario({"log": log})).steps[0]
    assert step.problems == [
        "no line containing 'listening'",
        "1 line(s), expected 2: a record with decision=allow",
        f"1 line(s), expected none: a record with decision=deny: {SIDECAR_LOG[2]}",
        "1 line(s), expected none: a line matching '^sidecar': sidecar starting",
    ]


def test_log_lines_are_those_written_since_the_scenario_started():
    lines = ["old line: denied"]

    def logs(*_args):
        return OpResult("docker logs x", 0, "\n".join(lines) + "\n")

    def exec_(*_args):
        lines.append("new line")
        return OpResult("x", 0, OK)

    cluster = FakeCluster(answers={"logs": logs, "exec": exec_})
    sc = scenario(
        {"exec": {**CURL, "command": ["true"]}},
        {
            "log": {
                "namespace": "curl",
                "selector": "app=curl",
                "present": [{"text": "new line"}],
                "absent": [{"text": "denied"}],
                "timeout": 0.2,
            }
        },
    )
    assert run(cluster, sc).passed


ALLOWED_HTTPSTAT = json.dumps({"event": "decision", "decision": "allow", "host": "httpstat.us"})


class SidecarLog:
    """A sidecar's log that gains the ``written`` lines once the scenario started and the ``late``
    ones just after the log step's first read (a sidecar writes at the end of its event-loop turn)."""

    def __init__(self, written=("listening on :15001",), late=()) -> None:
        self.lines = ["sidecar starting", ALLOWED_HTTPSTAT]  # before the scenario started: not counted
        self.added = {1: list(written), 2: list(late)}  # after the mark, after the step's first read
        self.reads = 0

    def logs(self, *_args) -> OpResult:
        text = "\n".join(self.lines) + "\n"
        self.reads += 1
        self.lines += self.added.get(self.reads, [])
        return OpResult("docker logs sidecar", 0, text)


def log_step(**expectations) -> dict:
    return {
        "log": {
            "namespace": "curl",
            "selector": "app=curl",
            "container": "sidecar",
            "timeout": 5,
            **expectations,
        }
    }


@pytest.mark.parametrize("late", [[], [ALLOWED_HTTPSTAT]], ids=["never written", "written late"])
def test_log_absent_lines_are_confirmed_by_a_read_after_the_settle_time(late):
    sidecar = SidecarLog(late=late)
    cluster = FakeCluster(answers={"logs": sidecar.logs})
    step = run(cluster, scenario(log_step(absent=[{"text": "httpstat.us"}]))).steps[0]
    assert sidecar.reads - 1 == step.attempts == 2
    assert step.duration >= SETTLE_TIME * 0.9
    if late:
        assert step.status == "failed"
        assert step.problems == [
            f"1 line(s), expected none: a line containing 'httpstat.us': {ALLOWED_HTTPSTAT}"
        ]
    else:
        assert step.passed, step.problems


def test_log_present_lines_alone_do_not_wait_the_settle_time():
    sidecar = SidecarLog()
    cluster = FakeCluster(answers={"logs": sidecar.logs})
    step = run(cluster, scenario(log_step(present=[{"text": "listening"}]))).steps[0]
    assert step.passed, step.problems
    assert sidecar.reads - 1 == step.attempts == 1
    assert step.duration < SETTLE_TIME


def test_log_expectations_are_checked_when_loaded():
    base = {"namespace": "curl", "selector": "app=curl"}
    assert "step 1 (log): log needs at least one of present and absent" in error({"log": base})
    assert "log/present/0: a log line expectation has exactly one of text, matches and record" in error(
        {"log": {**base, "present": [{"text": "a", "matches": "b"}]}}
    )
    assert "log: absent lines take no count" in error(
        {"log": {**base, "absent": [{"text": "a", "count": 1}]}}
    )


# background processes ------------------------------------------------------------------------------
class LongConnection:
    """A pod in which ``curl -N URL`` runs until killed, as a sh with a pid file would."""

    def __init__(self, ends_by_itself: bool = False) -> None:
        self.killed = threading.Event()
        self.started = threading.Event()
        self.ends_by_itself = ends_by_itself

    def __call__(self, namespace, selector, container, argv):
        script = argv[2] if argv[:2] == ("sh", "-c") else ""
        if script.startswith("echo $$ >"):
            self.started.set()
            if not self.ends_by_itself:
                self.killed.wait(5)
                return OpResult("docker exec c sh -c ...", 143, "partial stream\n", "")
            return OpResult("docker exec c sh -c ...", 56, "", "curl: (56) Recv failure")
        if argv[:2] == ("test", "-s"):
            return OpResult("test", 0 if self.started.is_set() else 1)
        if "kill -0" in script:
            return OpResult("alive", 0 if self.started.is_set() and not self.killed.is_set() else 1)
        if "kill -TERM" in script:
            self.killed.set()
            return OpResult("kill", 0)
        return OpResult("docker exec c " + " ".join(argv), 0, "")


def test_a_background_process_runs_across_steps_until_stopped():
    pod = LongConnection()
    cluster = FakeCluster(answers={"exec": pod})
    sc = scenario(
        {
            "background": {
                "name": "stream",
                **CURL,
                "command": ["curl", "-sN", "http://httpbin.org/stream/100"],
            }
        },
        {"exec": {**CURL, "command": ["true"]}},
        {
            "stop": {
                "name": "stream",
                "running": True,
                "stdout_contains": "partial",
                "stdout_not_contains": "error",
            }
        },
    )
    result = run(cluster, sc)
    assert result.passed, result.explain()
    start, _, stop = result.steps
    assert start.actual == {"running": True}
    assert stop.actual["running"] is True and stop.actual["exit_code"] == 143
    assert pod.killed.is_set()
    assert start.kubectl.endswith("-- curl -sN http://httpbin.org/stream/100 &")
    assert "kill -TERM" in stop.kubectl and "-n curl -c curl --" in stop.kubectl


def test_a_background_process_that_ended_is_reported_by_stop():
    cluster = FakeCluster(answers={"exec": LongConnection(ends_by_itself=True)})
    sc = scenario(
        {
            "background": {
                "name": "stream",
                **CURL,
                "command": ["curl", "-sN", "http://httpbin.org/stream/100"],
            }
        },
        {"stop": {"name": "stream", "running": True}},
    )
    start, stop = run(cluster, sc).steps
    assert start.status == "failed" and start.problems[0].startswith("ended at once with exit code 56")
    assert stop.status == "skipped"


def test_background_processes_left_running_are_stopped_with_the_scenario():
    pod = LongConnection()
    cluster = FakeCluster(answers={"exec": pod})
    sc = scenario({"background": {"name": "stream", **CURL, "command": ["sleep", "1000"]}})
    assert run(cluster, sc).passed
    assert pod.killed.is_set()


def test_stop_needs_an_earlier_background_step():
    assert "step 1 (stop): stop: no earlier background step is named 'x' (none)" in error(
        {"stop": {"name": "x"}}
    )
    twice = {"background": {"name": "x", **CURL, "command": ["sleep", "9"]}}
    assert "step 2 (background): background: 'x' is already started by an earlier step" in error(twice, twice)
