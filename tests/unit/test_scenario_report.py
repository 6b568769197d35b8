"""The JSON report: skipped scenarios, broken resets and failed steps as a reader sees them."""

from __future__ import annotations

import json

from scenarios import report
from scenarios.clusters.base import OpResult, Unsupported
from scenarios.format import parse
from scenarios.runner import Runner
from tests.unit.test_scenario_fakes import FakeCluster


def scenario(name: str, *steps: dict, requires: list[str] | None = None):
    return parse(
        {
            "name": name,
            "title": {"en": name, "zh": "测试"},
            "steps": list(steps),
            **({"requires": requires} if requires else {}),
        },
        f"{name}.yaml",
    )


RUN = {
    "narration": {"en": "Create the namespace.", "zh": "创建命名空间。"},
    "run": ["kubectl", "create", "ns", "x"],
}
TOP = {"narration": "Top.", "run": ["kubectl", "top", "pods"]}


def test_report_of_passed_failed_skipped_and_broken_scenarios(tmp_path):
    cluster = FakeCluster(
        answers={
            "run": [
                OpResult("kubectl create ns x", 0, "namespace/x created\n"),
                OpResult("k", 1, "", "boom"),
                Unsupported("kubectl top is not supported"),
            ],
        }
    )
    scenarios = [
        scenario("good", RUN),
        scenario("bad", RUN, TOP),
        scenario("unsupported", TOP),
        scenario("needs-coredns", RUN, requires=["coredns"]),
    ]
    result = Runner(cluster, poll_interval=0.01).run(scenarios)
    path = report.write(result, tmp_path / "sub" / "r.json")
    data = json.loads(path.read_text(encoding="utf-8"))

    assert data["version"] == 1 and data["backend"] == "fake" and data["passed"] is False
    assert [(s["name"], s["status"], s["skipped"]) for s in data["scenarios"]] == [
        ("good", "passed", None),
        ("bad", "failed", None),
        ("unsupported", "passed", None),
        ("needs-coredns", "skipped", "backend fake lacks coredns"),
    ]
    good, bad_first, bad_second, unsupported = data["steps"]
    assert good == {
        "scenario": "good",
        "index": 1,
        "kind": "run",
        "title": None,
        "narration": {"en": "Create the namespace.", "zh": "创建命名空间。"},
        "kubectl": "kubectl create ns x",
        "command": "kubectl create ns x",
        "expected": {"exit_code": 0},
        "actual": {"exit_code": 0},
        "pass": True,
        "status": "passed",
        "problems": [],
        "duration": good["duration"],
        "attempts": 1,
        "skipped": None,
    }
    assert bad_first["pass"] is False and bad_first["problems"] == ["exit code 1, expected 0", "boom"]
    assert bad_second["status"] == "skipped" and bad_second["skipped"] == "not run: step 1 (run) failed"
    assert unsupported["status"] == "skipped"
    assert unsupported["skipped"] == "unsupported on fake: kubectl top is not supported"


def test_broken_reset_is_in_the_report(tmp_path):
    cluster = FakeCluster(answers={"reset": RuntimeError("controller container is gone")})
    result = Runner(cluster).run([scenario("s", RUN)])
    data = report.to_dict(result)
    assert data["passed"] is False
    assert data["scenarios"][0]["error"] == "reset failed: controller container is gone"
    assert data["steps"][0]["skipped"] == "reset failed: controller container is gone"
