"""The demo's rendering, matrix and report, driven by a recorded (fake) run of the article: the
runner's own results (StepResult with parsed responses and records), as a real run produces them."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from scenarios import curl
from scenarios.demo import matrix as demo_matrix
from scenarios.demo import report as demo_report
from scenarios.demo.model import DemoRun
from scenarios.demo.outcomes import Outcome, request_outcomes
from scenarios.demo.render import LiveRenderer, make_console, pretty_json
from scenarios.format import ApplyStep, GatewayLogStep, PatchStep, RequestStep, Scenario, Step, Text
from scenarios.format.common import StepMeta
from scenarios.runner import ScenarioResult, StepResult
from tests.article import DENIED_BODY, DENIED_HEAD

ANSI = re.compile(r"\x1b\[|\x1b\]|\x1b[()]")
CURL = (
    "kubectl exec \"$(kubectl get pod -n curl -l app=curl -o jsonpath='{.items..metadata.name}')\" "
    "-n curl -c curl -- curl -sI http://httpbin.org:80/get http://httpstat.us/200"
)
OK_JSON = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 571\r\n\r\n"
OK_TEXT = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncontent-type: text/plain\r\n\r\n"
DENIED = DENIED_HEAD + DENIED_BODY
STARTED = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
LOG_HTTPBIN = {
    "connection_id": "f34e0b0aa1034190",
    "request_time": "2026-11-25T17:00:05.864Z",
    "source_address": "10.42.0.17",
    "source_port": 36856,
    "host": "httpbin.org",
    "path": "/get",
    "method": "HEAD",
}
LOG_HTTPSTAT = {**LOG_HTTPBIN, "connection_id": "0123456789abcdef", "host": "httpstat.us", "path": "/200"}
LOG_EARLIER = {**LOG_HTTPSTAT, "request_time": "2026-11-25T16:00:00.000Z"}
NARRATION = {"en": "Send requests to both services.", "zh": "尝试向两个服务发送请求。"}
POD = {"namespace": "curl", "selector": "app=curl", "container": "curl"}
DISABLED_TITLE = {"en": "Egress disabled", "zh": "测试"}
EGRESS_HEAD = "kind: Egress\napiVersion: policy.openservicemesh.io/v1alpha1\n"


def result(
    scenario: str,
    index: int,
    step: Step,
    kubectl: str,
    narration: dict[str, str] | None = None,
    output: str = "",
    actual: Any = None,
    passed: bool = True,
    command: str = "",
) -> StepResult:
    text = Text(**(narration or {"en": f"step {index}"}))
    step.with_meta(StepMeta(index, text))
    return StepResult(
        scenario, index, step.kind, None, text, kubectl, command or kubectl, step.expected(), actual, passed,
        output=output, step=step,
    )  # fmt: skip


def request(scenario: str, stdout: str, exit_code: int = 0, passed: bool = True) -> StepResult:
    step = RequestStep.model_validate(
        {**POD, "urls": ["http://httpbin.org:80/get", "http://httpstat.us/200"], "expect": {"exit_code": 0}}
    )
    actual = {"exit_code": exit_code, "responses": [r.to_dict() for r in curl.parse(stdout)]}
    return result(scenario, 3, step, CURL, NARRATION, stdout, actual, passed)


def gateway_log(scenario: str, *records: dict) -> StepResult:
    out = "".join(json.dumps(r) + "\n" for r in records)
    command = "kubectl logs -n egress-gateway -l app=global-egress-gateway"
    step = GatewayLogStep.model_validate({"present": [{"host": "httpbin.org"}]})
    return result(scenario, 4, step, command, output=out, actual={"records": list(records)})


def scenario_result(name: str, title: dict[str, str] | None, *steps: StepResult) -> ScenarioResult:
    mode, _, policy = name.partition("-")  # the catalog's names; a real catalog file says it as data
    mode = "disabled" if mode == "egress" else mode
    policy = policy if policy in ("permissive", "policy") else None
    scenario = Scenario(
        name, Text(**(title or {"en": name})), "", [s.step for s in steps], mode=mode, policy=policy
    )
    return ScenarioResult(scenario, list(steps), started=STARTED.isoformat())


def article_run(lang: str = "en", policy_httpstat: str = DENIED) -> DemoRun:
    patch = result(
        "passthrough-permissive",
        1,
        PatchStep.model_validate(
            {"kind": "meshconfig", "name": "osm-mesh-config", "namespace": "osm-system",
             "patch": {"spec": {"traffic": {"enableEgress": True}}}}
        ),
        "kubectl patch meshconfig osm-mesh-config -n osm-system "
        '-p \'{"spec":{"traffic":{"enableEgress":true}}}\' --type=merge',
        {"en": "Turn permissive mode on.", "zh": "执行下面的命令,确保出口宽松模式开启。"},
        "meshconfig.config.openservicemesh.io/osm-mesh-config patched\n",
        {"exit_code": 0},
    )  # fmt: skip
    egress = result(
        "passthrough-policy",
        1,
        ApplyStep.model_validate(
            {"manifest": "kind: Egress\napiVersion: policy.openservicemesh.io/v1alpha1\n"}
        ),
        f"kubectl apply -f - <<EOF\n{EGRESS_HEAD}EOF",
        output="egress.policy.openservicemesh.io/httpbin-80 created\n",
        actual={"exit_code": 0},
        command="docker exec egress-mesh-controller apply",
    )
    run = DemoRun("docker", lang=lang, started=STARTED)
    run.scenarios = [
        scenario_result(
            "egress-disabled", {"en": "Egress disabled", "zh": "测试"}, request("egress-disabled", "", 7)
        ),
        scenario_result(
            "passthrough-permissive", None, patch, request("passthrough-permissive", OK_JSON + OK_TEXT)
        ),
        scenario_result("passthrough-policy", None, egress, request("passthrough-policy", OK_JSON + DENIED)),
        scenario_result(
            "gateway-permissive",
            None,
            request("gateway-permissive", OK_JSON + OK_TEXT),
            gateway_log("gateway-permissive", LOG_HTTPBIN, LOG_HTTPSTAT),
        ),
        # the earlier httpstat.us record belongs to the previous scenario and must not count
        scenario_result(
            "gateway-policy",
            None,
            request("gateway-policy", OK_JSON + policy_httpstat),
            gateway_log("gateway-policy", LOG_EARLIER, LOG_HTTPBIN),
        ),
    ]
    return run


def render(run: DemoRun, plain: bool = True, pause: bool = False, stdin: str = "") -> str:
    out = io.StringIO()
    renderer = LiveRenderer(
        make_console(out, plain=plain), lang=run.lang, pause=pause, stdin=io.StringIO(stdin)
    )
    renderer.banner(run)
    for scenario in run.scenarios:
        renderer.scenario_started(scenario.scenario)
        for step in scenario.steps:
            renderer.step_started(step.step, step.kubectl)
            renderer.step_finished(step, run.notes.get((step.scenario, step.index)))
    renderer.summary(run)
    return out.getvalue()


def test_plain_output_has_no_escape_codes_and_shows_commands_and_responses():
    text = render(article_run(), plain=True)
    assert not ANSI.search(text)
    assert f"$ {CURL}" in text
    assert "command terminated with exit code 7" in text
    assert "HTTP/1.1 403 Forbidden" in text and "Access denied" in text
    assert "content-length: 13" in text


def test_no_color_env_means_plain_even_on_a_tty(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    out = Tty()
    renderer = LiveRenderer(make_console(out), pause=False)
    run = article_run()
    renderer.banner(run)
    renderer.summary(run)
    assert out.getvalue() and not ANSI.search(out.getvalue())


def test_colour_terminal_output_is_coloured():
    assert ANSI.search(render(article_run(), plain=False))


def test_gateway_log_is_pretty_printed_like_jq():
    text = render(article_run(), plain=True)
    # jq's layout: one key per line, 2-space indent, keys in the record's order
    assert pretty_json(LOG_HTTPBIN) in text
    assert '{\n  "connection_id": "f34e0b0aa1034190",\n  "request_time"' in text


def test_zh_narration_and_headings_with_lang_zh():
    text = render(article_run(lang="zh"))
    for words in (
        "尝试向两个服务发送请求。",
        "边车透传",
        "出口网关",
        "宽松模式",
        "策略模式",
        "执行下面的命令,确保出口宽松模式开启。",
    ):
        assert words in text
    assert "Send requests to both services." not in text


def test_en_narration_by_default():
    text = render(article_run())
    assert "Send requests to both services." in text and "Sidecar passthrough" in text
    assert "尝试向两个服务发送请求。" not in text


def test_summary_matrix_shows_the_articles_values():
    cells = demo_matrix.build(article_run())
    observed = {row: {d: c.text("en") for d, c in dests.items()} for row, dests in cells.items()}
    assert observed == {
        ("disabled", None): {"httpbin.org": "exit 7 ✓", "httpstat.us": "exit 7 ✓"},
        ("passthrough", "permissive"): {"httpbin.org": "200 ✓", "httpstat.us": "200 ✓"},
        ("passthrough", "policy"): {"httpbin.org": "200 ✓", "httpstat.us": "403 ✓"},
        ("gateway", "permissive"): {
            "httpbin.org": "200, logged by gateway ✓",
            "httpstat.us": "200, logged by gateway ✓",
        },
        ("gateway", "policy"): {
            "httpbin.org": "200, logged by gateway ✓",
            "httpstat.us": "403, not logged ✓",
        },
    }


def test_matrix_marks_a_result_that_differs_from_the_article():
    run = article_run(policy_httpstat=OK_TEXT)
    cell = demo_matrix.build(run)[("gateway", "policy")]["httpstat.us"]
    assert cell.ok is False
    assert cell.text("en") == "200, not logged ✗ (article: 403, not logged)"
    text = render(run)
    assert "✗" in text and "1 result(s) differ from the article." in text


def test_matrix_rows_not_run_say_so():
    run = article_run()
    run.scenarios = run.scenarios[:1]
    assert demo_matrix.build(run)[("gateway", "policy")]["httpbin.org"].text("en") == "not run"


def test_responses_are_matched_to_urls_in_order():
    assert request_outcomes(request("x", OK_JSON + DENIED)) == {
        "httpbin.org": Outcome(status=200),
        "httpstat.us": Outcome(status=403),
    }
    assert request_outcomes(request("x", "", 7)) == {
        "httpbin.org": Outcome(exit_code=7),
        "httpstat.us": Outcome(exit_code=7),
    }


def test_markdown_report_has_matrix_commands_and_outputs(tmp_path):
    path = demo_report.write(article_run(), tmp_path / "demo.md")
    text = path.read_text(encoding="utf-8")
    assert "| mode | policy | httpbin.org | httpstat.us |" in text
    assert "| Egress gateway | Policy mode | 200, logged by gateway ✓ | 403, not logged ✓ |" in text
    assert f"```sh\n{CURL}\n```" in text
    assert "HTTP/1.1 403 Forbidden\ncontent-length: 13\nconnection: keep-alive\n\nAccess denied" in text
    assert "command terminated with exit code 7" in text
    assert "kubectl apply -f - <<EOF\nkind: Egress" in text
    assert "```json\n" + pretty_json(LOG_HTTPBIN) in text
    assert not ANSI.search(text) and "\r" not in text


def test_markdown_report_in_chinese():
    text = demo_report.to_markdown(article_run(lang="zh"))
    assert "| 出口网关 | 策略模式 | 200, 经出口网关记录 ✓ | 403, 网关无记录 ✓ |" in text
    assert "尝试向两个服务发送请求。" in text


def test_pause_consumes_one_enter_per_step_from_piped_stdin():
    run = article_run()
    steps = sum(len(s.steps) for s in run.scenarios)
    stdin = io.StringIO("\n" * (steps + 2))
    out = io.StringIO()
    renderer = LiveRenderer(make_console(out, plain=True), pause=True, stdin=stdin)
    for scenario in run.scenarios:
        for step in scenario.steps:
            renderer.step_started(step.step, step.kubectl)
            renderer.step_finished(step)
    assert stdin.read() == "\n\n"  # exactly one line per step was consumed
    assert out.getvalue().count("press Enter to run") == steps


def test_pause_goes_on_without_pauses_when_stdin_closes():
    text = render(article_run(), pause=True, stdin="\n")
    assert text.count("press Enter to run") == 2
    assert "stdin closed: continuing without pauses" in text
    assert "403, not logged ✓" in text  # ran to the end


@pytest.mark.parametrize("plain", [True, False])
def test_failed_step_shows_expected_actual_and_where_to_look(plain):
    run = article_run()
    step = run.scenarios[2].steps[1]
    step.passed = False
    step.expected = [{"status": 200}, {"status": 403}]
    step.actual = [{"status": 200}, {"status": 200}]
    run.notes_of(step).hints = ["docker logs egress-mesh-curl-curl-sidecar"]
    text = render(run, plain=plain)
    assert "FAILED" in text
    assert '[{"status": 200}, {"status": 403}]' in text
    assert "look further: docker logs egress-mesh-curl-curl-sidecar" in text
    assert "1 step(s) failed." in text


def test_report_shows_each_modes_traffic_path_as_a_mermaid_diagram_next_to_the_matrix():
    text = demo_report.to_markdown(article_run())
    matrix_at = text.index("| mode | policy | httpbin.org | httpstat.us |")
    paths_at = text.index("### Traffic paths")
    assert matrix_at < paths_at < text.index("## Egress disabled")
    diagrams = text.split("```mermaid\n")[1:]
    assert len(diagrams) == 5 and all(d.startswith("flowchart LR\n") for d in diagrams)
    disabled, _, passthrough_policy, _, gateway_policy = (d.split("```")[0] for d in diagrams)
    assert 'pod -. "exit 7 ✓ (httpbin.org)" .-x sidecar' in disabled
    assert 'sidecar -- "403 ✓" --x httpstat_us' in passthrough_policy
    assert 'sidecar -- "200 ✓" --> httpbin_org' in passthrough_policy
    assert 'sidecar -- "CONNECT :1080" --> gateway' in gateway_policy
    assert 'gateway -- "200, logged by gateway ✓" --> httpbin_org' in gateway_policy
    assert 'sidecar -- "403, not logged ✓" --x httpstat_us' in gateway_policy
    assert "**Egress gateway · Policy mode**" in text


def test_a_diagram_edge_shows_a_result_that_differs_from_the_article():
    text = demo_report.to_markdown(article_run(policy_httpstat=OK_TEXT))
    gateway_policy = text.split("```mermaid\n")[5].split("```")[0]
    assert 'gateway -- "200, not logged ✗ (article: 403, not logged)" --> httpstat_us' in gateway_policy
