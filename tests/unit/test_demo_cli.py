"""``python -m scenarios demo`` end to end on an in-memory cluster that behaves like the article."""

from __future__ import annotations

import io
import re
import sys
import textwrap

import pytest

from scenarios.clusters.base import BackendUnavailable
from scenarios.demo import cli as demo
from tests.article_cluster import ArticleCluster

ANSI = re.compile(r"\x1b[\[\]()]")


@pytest.fixture
def cluster(monkeypatch) -> ArticleCluster:
    fake = ArticleCluster()
    monkeypatch.setattr(demo, "create", lambda name, options: fake)
    monkeypatch.setattr(
        "scenarios.images.build_all", lambda base_image=None, progress=None: {"curl": "egress-mesh/curl:1"}
    )
    monkeypatch.setattr("scenarios.runner.engine.POLL_INTERVAL", 0.05)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return fake


def test_auto_demo_replays_the_catalog_and_reports_the_articles_matrix(cluster, capsys, tmp_path):
    report = tmp_path / "demo.md"
    code = demo.main(["--auto", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert not ANSI.search(out)  # not a TTY: plain text
    assert "command terminated with exit code 7" in out
    assert "HTTP/1.1 403 Forbidden" in out
    assert '"source_address": "10.42.0.17",' in out  # the gateway log, pretty-printed
    assert "All steps passed" in out
    text = report.read_text(encoding="utf-8")
    assert "| Egress disabled | - | exit 7 ✓ | exit 7 ✓ |" in text
    assert "| Sidecar passthrough | Permissive mode | 200 ✓ | 200 ✓ |" in text
    assert "| Sidecar passthrough | Policy mode | 200 ✓ | 403 ✓ |" in text
    assert (
        "| Egress gateway | Permissive mode | 200, logged by gateway ✓ | 200, logged by gateway ✓ |" in text
    )
    assert "| Egress gateway | Policy mode | 200, logged by gateway ✓ | 403, not logged ✓ |" in text
    assert "kubectl patch meshconfig osm-mesh-config -n osm-system" in text
    assert (
        "docker exec egress-mesh-curl-curl curl -sI http://httpbin.org:80/get http://httpstat.us/200" in text
    )
    assert cluster.downs == [False]


def test_repeated_setup_is_shown_once_in_full(cluster, capsys):
    assert demo.main(["--auto"]) == 0
    out = capsys.readouterr().out
    assert out.count("$ kubectl create namespace curl") == 1
    assert out.count("✓ kubectl create namespace curl") == 4  # the other four scenarios, one line each


def test_zh_demo_narrates_in_chinese(cluster, capsys):
    assert demo.main(["--auto", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    for words in (
        "边车透传",
        "出口网关",
        "宽松模式",
        "策略模式",
        "如我们所期望的,只有 httpbin.org 的服务才被放行。",
    ):
        assert words in out


def test_pause_reads_enter_from_piped_stdin(cluster, capsys, monkeypatch):
    stdin = io.StringIO("\n" * 3)
    monkeypatch.setattr(sys, "stdin", stdin)
    assert demo.main(["--pause", "egress-disabled"]) == 0
    out = capsys.readouterr().out
    assert stdin.read() == ""  # all consumed
    assert out.count("press Enter to run") == 4  # three Enters, then EOF on the fourth
    assert "stdin closed: continuing without pauses" in out
    assert "exit 7 ✓" in out


def test_without_a_tty_the_default_is_auto(cluster, capsys):
    assert demo.main(["egress-disabled"]) == 0
    out = capsys.readouterr().out
    assert "press Enter" not in out
    assert "All steps passed (not every part of the article ran)." in out


BROKEN = textwrap.dedent(
    """
    name: passthrough-policy-short
    title: {en: "Sidecar passthrough, policy mode", zh: 边车透传:策略模式}
    mode: passthrough
    policy: policy
    steps:
      - narration: {en: Deny by default., zh: 禁用出口宽松模式。}
        patch: {kind: meshconfig, name: osm-mesh-config, namespace: osm-system,
                patch: {"spec":{"traffic":{"enableEgress":false}}}}
      - narration: Allow httpbin.org.
        apply:
          manifest: |
            kind: Egress
            apiVersion: policy.openservicemesh.io/v1alpha1
            metadata: {name: httpbin-80, namespace: curl}
            spec:
              sources: [{kind: ServiceAccount, name: curl, namespace: curl}]
              hosts: [httpbin.org]
              ports: [{number: 80, protocol: http}]
      - narration: httpstat.us is refused.
        request:
          namespace: curl
          selector: app=curl
          container: curl
          urls: [http://httpbin.org:80/get, http://httpstat.us/200]
          timeout: 0.2
          expect: [{status: 200}, {status: 403}]
      - narration: The demo goes on after a failure.
        request:
          namespace: curl
          selector: app=curl
          container: curl
          urls: [http://httpbin.org:80/get]
          timeout: 0.2
          expect: [{status: 200}]
    """
)


@pytest.fixture
def broken(cluster, tmp_path):
    cluster.broken_policy = True
    path = tmp_path / "passthrough-policy-short.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return str(path)


def test_a_failure_is_explained_and_the_demo_goes_on(broken, capsys, tmp_path):
    report = tmp_path / "r.md"
    code = demo.main(["--auto", broken, "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 1
    assert "response 2 (http://httpstat.us/200): status 200, expected 403" in out
    assert "look further: docker logs egress-mesh-curl-sidecar" in out
    assert '│ {"msg": "allowed by policy"}' in out
    assert "The demo goes on after a failure." in out  # the next step still ran
    assert "1 step(s) failed." in out
    assert "| Sidecar passthrough | Policy mode | 200 ✓ | 200 ✗ (article: 403) |" in report.read_text()


def test_stop_on_failure_stops_cleanly(broken, cluster, capsys):
    code = demo.main(["--auto", "--stop-on-failure", broken])
    out = capsys.readouterr().out
    assert code == 1
    assert "--stop-on-failure: stopping after the first failed step" in out
    assert "The demo goes on after a failure." not in out
    assert "Traceback" not in out
    assert cluster.downs == [False]  # still cleaned up


def test_keep_leaves_the_cluster(cluster, capsys):
    assert demo.main(["--auto", "--keep", "egress-disabled"]) == 0
    assert cluster.downs == [True]
    assert "--keep: the cluster and containers are left running" in capsys.readouterr().out


def test_unavailable_backend_is_a_clear_error(monkeypatch, capsys):
    def unavailable(name, options):
        raise BackendUnavailable("no Docker engine answers at unix:///var/run/docker.sock")

    monkeypatch.setattr(demo, "create", unavailable)
    assert demo.main(["--auto"]) == 3
    out = capsys.readouterr().out
    assert "backend unavailable: no Docker engine answers" in out and "Traceback" not in out


def test_setup_failure_says_where_to_look(cluster, monkeypatch, capsys):
    def fails(base_image=None, progress=None):
        raise RuntimeError("docker build of proxy failed: step 3/9")

    monkeypatch.setattr("scenarios.images.build_all", fails)
    assert demo.main(["--auto"]) == 3
    out = capsys.readouterr().out
    assert "error: docker build of proxy failed: step 3/9" in out
    assert "look further: python -m scenarios images" in out
    assert cluster.downs == [False]


def test_unknown_scenario_is_a_usage_error(cluster, capsys):
    assert demo.main(["--auto", "no-such-scenario"]) == 2
    assert "no scenario named 'no-such-scenario'" in capsys.readouterr().out


def test_ctrl_c_stops_cleanly_and_removes_the_backend(cluster, monkeypatch, capsys):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster, "exec", interrupt)
    assert demo.main(["--auto", "egress-disabled"]) == 130
    out = capsys.readouterr().out
    assert "interrupted" in out and "Traceback" not in out
    assert cluster.downs == [False]


def test_report_that_cannot_be_written_is_a_clear_error(cluster, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("")
    assert demo.main(["--auto", "egress-disabled", "--report", str(target / "demo.md")]) == 2
    assert f"cannot write the report {target / 'demo.md'}" in capsys.readouterr().out


def test_a_broken_backend_reset_fails_the_run(cluster, monkeypatch, capsys):
    def broken_reset():
        raise RuntimeError("docker rm failed")

    monkeypatch.setattr(cluster, "reset", broken_reset)
    assert demo.main(["--auto", "egress-disabled"]) == 1
    out = capsys.readouterr().out
    assert "egress-disabled: reset failed: docker rm failed" in out
    assert "All steps passed" not in out


@pytest.mark.parametrize(
    ("argv", "tty", "pause"),
    [([], True, True), ([], False, False), (["--auto"], True, False), (["--pause"], False, True)],
)
def test_pause_is_the_default_only_on_a_terminal(argv, tty, pause):
    class Stdin(io.StringIO):
        def isatty(self) -> bool:
            return tty

    assert demo.pause_wanted(demo.build_parser().parse_args(argv), Stdin()) is pause


def test_auto_and_pause_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--auto", "--pause"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
