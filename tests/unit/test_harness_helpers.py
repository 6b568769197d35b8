"""The step-level helpers a hand-written test uses (the plugin's ``mesh`` fixture), on an in-memory
cluster: setup failures are assertion errors with the command, observations are data, ``until=``
repeats an observation while the configuration travels."""

from __future__ import annotations

import json

import pytest

from mesh.api.accesslog import InvalidRecord
from scenarios import harness
from scenarios.clusters.base import OpResult
from scenarios.harness import CommandFailed, MeshHarness
from tests.article import DENIED_BODY, DENIED_HEAD
from tests.unit.test_scenario_fakes import FakeCluster

OK = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n200 OK"
RECORD = {
    "connection_id": "f34e0b0aa1034190",
    "request_time": "2022-11-10T08:15:31.864Z",
    "source_address": "10.0.0.1",
    "source_port": 36856,
    "host": "httpbin.org",
    "path": "/get",
    "method": "HEAD",
}


def test_a_failed_setup_operation_is_an_assertion_error_with_the_command_and_its_output():
    cluster = FakeCluster(
        answers={"apply": OpResult("kubectl apply -n curl -f -", 1, "", "Egress x: ports is required")}
    )
    with pytest.raises(CommandFailed) as info:
        MeshHarness(cluster).apply("kind: Egress\n", "curl")
    assert str(info.value) == "kubectl apply -n curl -f -\nexited 1, expected 0\nEgress x: ports is required"
    assert isinstance(info.value, AssertionError)
    assert MeshHarness(cluster).apply("kind: Egress\n", check=False).exit_code == 1
    cluster = FakeCluster(answers={"run": OpResult("kubectl get x", 1)})
    assert MeshHarness(cluster).run(["kubectl", "get", "x"], exit_code=1).exit_code == 1


def test_request_parses_statuses_headers_and_bodies():
    cluster = FakeCluster(
        answers={"exec": OpResult("docker exec c curl -si a b", 0, OK + DENIED_HEAD + DENIED_BODY)}
    )
    reply = MeshHarness(cluster).request(
        "curl", "app=curl", "curl", ["http://a/", "http://b/"], curl_args=["-si"]
    )
    assert reply.statuses == [200, 403] and reply.exit_code == 0
    assert reply.responses[1].header("Content-Length") == "13" and reply.responses[1].body == "Access denied"
    assert cluster.ops("exec")[0].args[3] == ("curl", "-si", "http://a/", "http://b/")


def test_until_repeats_an_observation_until_it_holds_or_the_time_is_up(monkeypatch):
    monkeypatch.setattr(harness, "POLL_INTERVAL", 0.01)
    cluster = FakeCluster(answers={"exec": [OpResult("x", 7), OpResult("x", 7), OpResult("x", 0, OK)]})
    mesh = MeshHarness(cluster)
    reply = mesh.request("curl", "app=curl", "curl", ["http://a/"], until=lambda r: r.statuses == [200])
    assert reply.statuses == [200] and len(cluster.ops("exec")) == 3
    late = FakeCluster(answers={"exec": OpResult("x", 7)})
    reply = MeshHarness(late).request(
        "curl", "app=curl", "curl", ["http://a/"], until=lambda r: r.exit_code == 0, timeout=0.1
    )
    assert reply.exit_code == 7 and len(late.ops("exec")) > 1  # the last one, after trying again


def test_pod_log_lines_and_json_records():
    log = "starting\n" + json.dumps({"event": "decision", "decision": "deny"}) + "\n{not json\n"
    cluster = FakeCluster(answers={"logs": OpResult("docker logs c", 0, log)})
    pod_log = MeshHarness(cluster).pod_log("curl", "app=curl", "sidecar")
    assert pod_log.lines == ["starting", '{"event": "decision", "decision": "deny"}', "{not json"]
    assert pod_log.records == [{"event": "decision", "decision": "deny"}]
    missing = FakeCluster(answers={"logs": OpResult("docker logs c", 1, "", "no pod")})
    with pytest.raises(CommandFailed, match="no pod"):
        MeshHarness(missing).pod_log("curl", "app=curl")


def test_gateway_records_are_parsed_and_held_to_the_access_log_contract():
    cluster = FakeCluster(
        answers={"logs": OpResult("docker logs gw", 0, "listening\n" + json.dumps(RECORD) + "\n")}
    )
    records = MeshHarness(cluster).gateway_records()
    assert records.hosts() == ["httpbin.org"] and records.requests == [RECORD] and records.connections == []
    assert cluster.ops("logs")[0].args == ("egress-gateway", "app=global-egress-gateway", None)
    broken = FakeCluster(
        answers={"logs": OpResult("docker logs gw", 0, json.dumps({**RECORD, "connection_id": "x"}))}
    )
    with pytest.raises(InvalidRecord):
        MeshHarness(broken).gateway_records()


def test_the_sample_client_is_deployed_as_the_article_does():
    cluster = FakeCluster()
    MeshHarness(cluster).deploy_sample_client()
    assert [c.op for c in cluster.calls] == ["run", "run", "apply", "wait_ready"]
    assert cluster.ops("run")[1].args == (("osm", "namespace", "add", "curl"),)
    manifest, namespace = cluster.ops("apply")[0].args
    assert "kind: Deployment" in manifest and namespace == "curl"
