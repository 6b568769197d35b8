"""The runner's logic on an in-memory cluster: retries, failures, skips, gateway-log checks, events."""

from __future__ import annotations

import json
import time

import pytest

from scenarios.clusters.base import OpResult, Unsupported
from scenarios.format import parse
from scenarios.runner import SETTLE_TIME, Observer, Runner, kubectl_command
from tests.article import DENIED_HEAD as DENIED
from tests.unit.test_scenario_fakes import FakeCluster

CURL = {"namespace": "curl", "selector": "app=curl", "container": "curl"}
OK = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"


def scenario(*steps: dict, requires: list[str] | None = None):
    data = {"name": "t", "title": "test", "steps": list(steps)}
    if requires:
        data["requires"] = requires
    return parse(data, "t.yaml")


def request(expect, timeout: float = 0.3, urls=("http://httpbin.org/get", "http://httpstat.us/200")):
    return {
        "narration": "send",
        "request": {**CURL, "urls": list(urls), "expect": expect, "timeout": timeout},
    }


def record(host: str, path: str, ip: str = "10.0.0.1", cid: str = "f34e0b0aa1034190") -> str:
    return json.dumps(
        {
            "connection_id": cid,
            "request_time": "2022-11-10T08:15:31.864Z",
            "source_address": ip,
            "source_port": 36856,
            "host": host,
            "path": path,
            "method": "HEAD",
        }
    )


def run(cluster: FakeCluster, *scenarios, observers=()):
    return Runner(cluster, observers, poll_interval=0.01).run(list(scenarios))


def test_request_retries_until_the_expectation_holds():
    cluster = FakeCluster(
        answers={"exec": [OpResult("x", 7), OpResult("x", 7), OpResult("x", 0, OK + DENIED)]}
    )
    result = run(cluster, scenario(request([{"status": 200}, {"status": 403}], timeout=5)))
    step = result.scenarios[0].steps[0]
    assert result.passed and step.passed
    assert step.attempts == 3
    assert step.actual["responses"][1]["status_line"] == "HTTP/1.1 403 Forbidden"
    assert cluster.ops("exec")[0].args == (
        "curl",
        "app=curl",
        "curl",
        ("curl", "-sI", "http://httpbin.org/get", "http://httpstat.us/200"),
    )


def test_failed_request_reports_the_last_actual_result_and_why():
    cluster = FakeCluster(answers={"exec": OpResult("docker exec ...", 0, OK + OK)})
    expect = [{"status": 200}, {"status": 403, "headers": {"Content-Length": "13"}}]
    result = run(cluster, scenario(request(expect)))
    step = result.scenarios[0].steps[0]
    assert not result.passed and step.status == "failed"
    assert step.attempts > 1
    assert "response 2 (http://httpstat.us/200): status 200, expected 403" in step.problems
    assert "response 2 (http://httpstat.us/200): header content-length '6', expected '13'" in step.problems
    assert step.command == "docker exec ..."
    assert [r["status"] for r in step.actual["responses"]] == [200, 200]
    explained = result.scenarios[0].explain()
    assert "expected:" in explained and '"status": 403' in explained


def test_exit_code_expectation():
    cluster = FakeCluster(answers={"exec": OpResult("x", 7, "", "")})
    assert run(cluster, scenario(request({"exit_code": 7}))).passed
    cluster = FakeCluster(answers={"exec": OpResult("x", 0, OK)})
    result = run(cluster, scenario(request({"exit_code": 7})))
    assert result.scenarios[0].steps[0].problems == ["curl exit code 0, expected 7"]


def test_responses_expectation_also_requires_exit_code_zero():
    cluster = FakeCluster(answers={"exec": OpResult("x", 7, "", "connection refused")})
    result = run(cluster, scenario(request([{"status": 200}], urls=["http://httpbin.org/get"])))
    problems = result.scenarios[0].steps[0].problems
    assert problems[0] == "curl exit code 7, expected 0: connection refused"
    assert "0 response(s) (nothing), expected 1" in problems


def test_setup_failure_stops_the_scenario_but_check_failures_do_not():
    cluster = FakeCluster(answers={"run": OpResult("kubectl create namespace curl", 1, "", "AlreadyExists")})
    sc = scenario(
        {"narration": "a", "run": ["kubectl", "create", "namespace", "curl"]},
        request({"exit_code": 7}),
    )
    result = run(cluster, sc)
    first, second = result.scenarios[0].steps
    assert first.status == "failed" and "AlreadyExists" in first.problems
    assert second.status == "skipped" and second.skipped == "not run: step 1 (run) failed"
    assert not cluster.ops("exec")

    cluster = FakeCluster(answers={"exec": OpResult("x", 0, OK)})
    sc = scenario(request({"exit_code": 7}), {"narration": "b", "run": ["kubectl", "get", "pods"]})
    first, second = run(cluster, sc).scenarios[0].steps
    assert first.status == "failed" and second.status == "passed"


def test_unsupported_operation_is_a_skipped_step_and_missing_capability_skips_the_scenario():
    cluster = FakeCluster(answers={"run": Unsupported("no such command on docker")})
    result = run(cluster, scenario({"narration": "a", "run": ["kubectl", "top", "pods"]}))
    step = result.scenarios[0].steps[0]
    assert step.status == "skipped" and "no such command on docker" in step.skipped
    assert result.passed

    result = run(FakeCluster(), scenario(request({"exit_code": 7}), requires=["coredns"]))
    assert result.scenarios[0].status == "skipped"
    assert result.scenarios[0].skipped == "backend fake lacks coredns"
    assert result.passed


def test_each_scenario_starts_with_a_reset_and_a_broken_reset_fails_it():
    cluster = FakeCluster()
    run(cluster, scenario(request({"exit_code": 0}, urls=["http://x/"])), scenario(request({"exit_code": 0})))
    assert [c.op for c in cluster.calls if c.op in ("reset", "exec")] == ["reset", "exec", "reset", "exec"]

    cluster = FakeCluster(answers={"reset": RuntimeError("docker went away")})
    result = run(cluster, scenario(request({"exit_code": 0})))
    assert result.scenarios[0].status == "failed"
    assert result.scenarios[0].error == "reset failed: docker went away"
    assert result.scenarios[0].steps[0].skipped


def test_wait_timeout_is_a_failure_with_the_reason():
    cluster = FakeCluster(answers={"wait_ready": TimeoutError("pod curl-1: init container osm-init failed")})
    result = run(cluster, scenario({"narration": "w", "wait": {"namespace": "curl", "selector": "app=curl"}}))
    step = result.scenarios[0].steps[0]
    assert step.problems == ["timed out: pod curl-1: init container osm-init failed"]


def gateway_scenario(present=None, absent=None, timeout=0.3):
    log_step = {"narration": "log", "gateway_log": {"timeout": timeout}}
    if present is not None:
        log_step["gateway_log"]["present"] = present
    if absent is not None:
        log_step["gateway_log"]["absent"] = absent
    return scenario(request([{"status": 200}, {"status": 403}]), log_step)


POD_IP = {"pod_ip": {"namespace": "curl", "selector": "app=curl"}}


def test_gateway_log_counts_only_records_written_after_the_request_started():
    old = record("httpstat.us", "/200", cid="0000000000000001")
    log = {"lines": ["gateway listening on :1080", old]}

    def logs(*_args):
        return OpResult("docker logs gw", 0, "\n".join(log["lines"]) + "\n")

    def exec_(*_args):
        log["lines"].append(record("httpbin.org", "/get", ip="10.1.2.3"))
        return OpResult("x", 0, OK + DENIED)

    cluster = FakeCluster(answers={"logs": logs, "exec": exec_}, ips={("curl", "app=curl"): "10.1.2.3"})
    sc = gateway_scenario(
        present=[{"host": "httpbin.org", "path": "/get", "source_address": POD_IP, "count": 1}],
        absent=[{"host": "httpstat.us"}],
    )
    result = run(cluster, sc)
    step = result.scenarios[0].steps[1]
    assert step.passed, step.problems
    assert [r["host"] for r in step.actual["records"]] == ["httpbin.org"]
    assert step.actual["resolved"] == {"<ip of pod app=curl in curl>": "10.1.2.3"}


def test_gateway_log_failures_name_the_missing_and_the_unexpected_records():
    lines = [record("httpstat.us", "/200"), json.dumps({"connection_id": "xyz", "host": "httpbin.org"})]
    cluster = FakeCluster(
        answers={
            "exec": OpResult("x", 0, OK + DENIED),
            # at scenario start and before the request the gateway is not there yet
            "logs": [
                OpResult("l", 1, "", "no pod"),
                OpResult("l", 1, ""),
                OpResult("l", 0, "\n".join(lines)),
            ],
        },
        ips={("curl", "app=curl"): "10.9.9.9"},
    )
    sc = gateway_scenario(
        present=[{"host": "httpbin.org", "source_address": POD_IP}],
        absent=[{"host": "httpstat.us"}],
    )
    step = run(cluster, sc).scenarios[0].steps[1]
    assert step.status == "failed"
    assert any(p.startswith("record 2 breaks the access-log contract") for p in step.problems)
    assert "no record with host=httpbin.org, source_address=10.9.9.9" in step.problems
    assert any(p.startswith("1 record(s) with host=httpstat.us, expected none") for p in step.problems)


REQUESTED = record("httpbin.org", "/get")
DENIED_RECORD = record("httpstat.us", "/200")


class GatewayLog:
    """The gateway's log on a fake cluster. The request step's curl makes the gateway write the
    ``written`` records ``delay`` seconds later, and the ``late`` ones just after the first read
    that follows (the gateway writes its records in batches, after the response)."""

    def __init__(self, written=(REQUESTED,), late=(), delay: float = 0.0) -> None:
        self.lines = ["gateway listening on :1080", DENIED_RECORD]  # before the mark: not counted
        self.written, self.late, self.delay = list(written), list(late), delay
        self.sent_at: float | None = None
        self.reads: list[tuple[float, bool]] = []  # after the request: when, and whether it was written

    def logs(self, *_args) -> OpResult:
        now = time.monotonic()
        if self.sent_at is not None and now - self.sent_at >= self.delay:
            self.lines += self.written
            self.written = []
        text = "\n".join(self.lines) + "\n"
        if self.sent_at is not None:
            self.reads.append((now, not self.written))
            self.lines += self.late
            self.late = []
        return OpResult("docker logs gw", 0, text)

    def exec(self, *_args) -> OpResult:
        self.sent_at = time.monotonic()
        return OpResult("x", 0, OK + DENIED)

    def cluster(self) -> FakeCluster:
        return FakeCluster(answers={"logs": self.logs, "exec": self.exec})


def test_an_unwanted_record_written_after_the_first_read_fails_the_step():
    gateway = GatewayLog(late=[DENIED_RECORD])
    sc = gateway_scenario(
        present=[{"host": "httpbin.org", "count": 1}], absent=[{"host": "httpstat.us"}], timeout=5
    )
    step = run(gateway.cluster(), sc).scenarios[0].steps[1]
    assert step.status == "failed"
    assert step.problems == [f"1 record(s) with host=httpstat.us, expected none: {DENIED_RECORD}"]
    # read once more after the settle time, and not retried until the record goes away
    assert len(gateway.reads) == step.attempts == 2
    assert gateway.reads[1][0] - gateway.reads[0][0] >= SETTLE_TIME * 0.9
    assert step.duration < 5 / 2


def test_an_unwanted_record_on_the_first_read_fails_the_step_at_once():
    gateway = GatewayLog(written=[REQUESTED, DENIED_RECORD])
    sc = gateway_scenario(absent=[{"host": "httpstat.us"}], timeout=5)
    step = run(gateway.cluster(), sc).scenarios[0].steps[1]
    assert step.status == "failed"
    assert step.problems == [f"1 record(s) with host=httpstat.us, expected none: {DENIED_RECORD}"]
    assert len(gateway.reads) == step.attempts == 1


@pytest.mark.parametrize("timeout", [0.1, 5])
def test_an_absence_passes_when_a_read_after_the_settle_time_confirms_it(timeout):
    gateway = GatewayLog()
    attempts = []

    class Recorder(Observer):
        def step_attempt(self, scenario, step, attempt, result):
            attempts.append((step.kind, attempt, result.problems))

    sc = gateway_scenario(
        present=[{"host": "httpbin.org"}], absent=[{"host": "httpstat.us"}], timeout=timeout
    )
    step = run(gateway.cluster(), sc, observers=[Recorder()]).scenarios[0].steps[1]
    assert step.passed, step.problems
    assert len(gateway.reads) == step.attempts == 2  # even with a timeout shorter than the settle time
    assert gateway.reads[1][0] - gateway.reads[0][0] >= SETTLE_TIME * 0.9
    [(kind, attempt, [waiting])] = attempts  # what the console (verbose) and the demo show meanwhile
    assert (kind, attempt) == ("gateway_log", 1)
    assert waiting.startswith(f"right so far; reading again {SETTLE_TIME:g}s after the step started")


def test_a_pass_read_after_the_settle_time_is_not_read_again():
    gateway = GatewayLog(delay=SETTLE_TIME + 0.1)  # the step waits for the request's record until then
    sc = gateway_scenario(present=[{"host": "httpbin.org"}], absent=[{"host": "httpstat.us"}], timeout=5)
    step = run(gateway.cluster(), sc).scenarios[0].steps[1]
    assert step.passed, step.problems
    assert len(gateway.reads) == step.attempts > 2
    assert [written for _when, written in gateway.reads].count(True) == 1  # the last read found it


def test_a_record_written_twice_the_second_time_late_fails_a_count():
    """``count: 1`` also says "no second one": a duplicate written after the first read is seen."""
    gateway = GatewayLog(late=[REQUESTED])
    sc = gateway_scenario(present=[{"host": "httpbin.org", "count": 1}], timeout=0.1)
    step = run(gateway.cluster(), sc).scenarios[0].steps[1]
    assert step.status == "failed"
    assert step.problems == ["2 record(s) with host=httpbin.org, expected 1"]
    assert len(gateway.reads) == step.attempts == 2
    assert gateway.reads[1][0] - gateway.reads[0][0] >= SETTLE_TIME * 0.9


def test_a_step_with_only_present_records_does_not_wait_the_settle_time():
    gateway = GatewayLog()
    sc = gateway_scenario(present=[{"host": "httpbin.org"}], timeout=5)
    step = run(gateway.cluster(), sc).scenarios[0].steps[1]
    assert step.passed, step.problems
    assert len(gateway.reads) == step.attempts == 1
    assert step.duration < SETTLE_TIME


def test_observers_see_every_event_in_order():
    events = []

    class Recorder(Observer):
        def run_started(self, scenarios, cluster):
            events.append("run_started")

        def scenario_started(self, scenario):
            events.append("scenario_started")

        def step_started(self, scenario, step, kubectl):
            events.append(f"step_started {step.index} {kubectl.split(' --')[0][-12:]}")

        def step_attempt(self, scenario, step, attempt, result):
            events.append(f"step_attempt {attempt} {result.problems[0]}")

        def step_finished(self, scenario, step, result):
            events.append(f"step_finished {step.index} {result.status}")

        def scenario_finished(self, scenario, result):
            events.append(f"scenario_finished {result.status}")

        def run_finished(self, result):
            events.append(f"run_finished {result.passed}")

    cluster = FakeCluster(answers={"exec": [OpResult("x", 0, OK), OpResult("x", 7)]})
    run(cluster, scenario(request({"exit_code": 7}, timeout=5)), observers=[Recorder()])
    assert events == [
        "run_started",
        "scenario_started",
        "step_started 1 curl -c curl",
        "step_attempt 1 curl exit code 0, expected 7",
        "step_finished 1 passed",
        "scenario_finished passed",
        "run_finished True",
    ]


@pytest.mark.parametrize(
    ("step", "command"),
    [
        (
            {
                "patch": {
                    "kind": "meshconfig",
                    "name": "osm-mesh-config",
                    "namespace": "osm-system",
                    "type": "merge",
                    "patch": {"spec": {"traffic": {"enableEgress": True}}},
                }
            },
            "kubectl patch meshconfig osm-mesh-config -n osm-system "
            '-p \'{"spec":{"traffic":{"enableEgress":true}}}\' --type=merge',
        ),
        (
            {"request": {**CURL, "urls": ["http://httpbin.org:80/get"], "expect": {"exit_code": 7}}},
            "kubectl exec \"$(kubectl get pod -n curl -l app=curl -o jsonpath='{.items..metadata.name}')\" "
            "-n curl -c curl -- curl -sI http://httpbin.org:80/get",
        ),
        (
            {"delete": {"kind": "egress", "name": "httpbin-80", "namespace": "curl"}},
            "kubectl delete egress httpbin-80 -n curl",
        ),
        ({"run": ["osm", "namespace", "add", "curl"]}, "osm namespace add curl"),
    ],
)
def test_steps_are_shown_as_the_article_writes_them(step, command):
    sc = scenario({"narration": "n", **step})
    assert kubectl_command(sc.steps[0], sc) == command
