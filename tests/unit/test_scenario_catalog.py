"""The article's catalog: the five states of DESIGN section 1, in order, with the article's manifests."""

from __future__ import annotations

import yaml

from scenarios.format import (
    ApplyStep,
    DeleteStep,
    GatewayLogStep,
    PatchStep,
    PodIP,
    RequestStep,
    RunStep,
    WaitStep,
    catalog,
    catalog_files,
)
from tests.article import global_egress_gateway, httpbin_80

STATES = [
    "egress-disabled",
    "passthrough-permissive",
    "passthrough-policy",
    "gateway-permissive",
    "gateway-policy",
]
ARTICLE_URLS = ["http://httpbin.org:80/get", "http://httpstat.us/200"]
# the catalog keeps its own copy of the article's manifests: it must match the tests' one
EGRESS_HTTPBIN_80 = httpbin_80()
GLOBAL_EGRESS_GATEWAY = global_egress_gateway()


def by_name():
    return {s.name: s for s in catalog()}


def of(scenario, cls):
    return [s for s in scenario.steps if isinstance(s, cls)]


def test_five_states_in_the_articles_order_named_like_their_files():
    scenarios = catalog()
    assert [s.name for s in scenarios] == STATES
    for scenario, path in zip(scenarios, catalog_files(), strict=True):
        assert path.name.removesuffix(".scenario.yaml").split("-", 1)[1] == scenario.name
        assert scenario.title.zh and scenario.description
        assert all(step.narration.en and step.narration.zh for step in scenario.steps)


def test_every_scenario_sets_up_the_sample_app_like_the_article():
    for scenario in catalog():
        run, add, apply, wait = scenario.steps[:4]
        assert isinstance(run, RunStep) and run.argv == ["kubectl", "create", "namespace", "curl"]
        assert isinstance(add, RunStep) and add.argv == ["osm", "namespace", "add", "curl"]
        assert isinstance(apply, ApplyStep) and apply.namespace == "curl"
        kinds = [d["kind"] for d in yaml.safe_load_all(apply.manifest) if d]
        assert kinds == ["ServiceAccount", "Service", "Deployment"]
        assert isinstance(wait, WaitStep) and (wait.namespace, wait.selector) == ("curl", "app=curl")


def test_state_0_egress_disabled_is_exit_code_7():
    scenario = by_name()["egress-disabled"]
    requests = of(scenario, RequestStep)
    assert [r.urls for r in requests] == [["http://httpbin.org:80/get"], ["http://httpstat.us/200"]]
    assert all(r.exit_code == 7 and r.responses is None for r in requests)
    assert all(r.curl_args == ["-sI"] and (r.namespace, r.container) == ("curl", "curl") for r in requests)
    assert not of(scenario, PatchStep)


def egress_patch(step: PatchStep) -> bool:
    assert (step.object_kind, step.name, step.namespace, step.patch_type) == (
        "meshconfig",
        "osm-mesh-config",
        "osm-system",
        "merge",
    )
    assert step.patch == {
        "spec": {"traffic": {"enableEgress": step.patch["spec"]["traffic"]["enableEgress"]}}
    }
    return step.patch["spec"]["traffic"]["enableEgress"]


def manifests(scenario) -> list[dict]:
    return [yaml.safe_load(s.manifest) for s in of(scenario, ApplyStep) if s.file is None]


def statuses(step: RequestStep) -> list[int]:
    return [r.status for r in step.responses]


def test_state_1_passthrough_permissive():
    scenario = by_name()["passthrough-permissive"]
    assert [egress_patch(p) for p in of(scenario, PatchStep)] == [True]
    (request,) = of(scenario, RequestStep)
    assert request.urls == ARTICLE_URLS and statuses(request) == [200, 200]
    assert request.responses[1].headers == {"content-length": "6"}
    assert manifests(scenario) == [] and not of(scenario, GatewayLogStep)


def test_state_2_passthrough_policy_has_the_exact_403_and_cleans_up():
    scenario = by_name()["passthrough-policy"]
    assert [egress_patch(p) for p in of(scenario, PatchStep)] == [False]
    assert manifests(scenario) == [EGRESS_HTTPBIN_80]
    head, get = of(scenario, RequestStep)
    assert head.urls == ARTICLE_URLS and statuses(head) == [200, 403]
    denied = head.responses[1]
    assert denied.reason == "Forbidden"
    assert denied.headers == {"content-length": "13", "connection": "keep-alive"}
    assert get.curl_args == ["-si"] and get.responses[0].body == "Access denied"
    (delete,) = of(scenario, DeleteStep)
    assert (delete.object_kind, delete.name, delete.namespace) == ("egress", "httpbin-80", "curl")
    # the patch comes before the policy, as in the article
    kinds = [s.kind for s in scenario.steps[4:]]
    assert kinds.index("patch") < kinds.index("apply") < kinds.index("request")


def gateway_setup(scenario) -> None:
    applies = of(scenario, ApplyStep)
    assert (
        applies[1].file.endswith("manifests/egress-gateway.yaml") and applies[1].namespace == "egress-gateway"
    )
    argvs = [s.argv for s in of(scenario, RunStep)]
    assert ["osm", "namespace", "add", "egress-gateway"] in argvs
    assert [
        "kubectl",
        "annotate",
        "namespace",
        "egress-gateway",
        "openservicemesh.io/sidecar-injection=disabled",
        "--overwrite",
    ] in argvs
    assert manifests(scenario)[0] == GLOBAL_EGRESS_GATEWAY


CURL_POD = PodIP("curl", "app=curl")


def test_state_3_gateway_permissive_logs_both_requests_with_the_pod_ip():
    scenario = by_name()["gateway-permissive"]
    gateway_setup(scenario)
    assert [egress_patch(p) for p in of(scenario, PatchStep)] == [True]
    (request,) = of(scenario, RequestStep)
    assert request.urls == ARTICLE_URLS and statuses(request) == [200, 200]
    (log,) = of(scenario, GatewayLogStep)
    assert [(r.fields, r.count) for r in log.present] == [
        ({"host": "httpbin.org", "path": "/get", "method": "HEAD", "source_address": CURL_POD}, 1),
        ({"host": "httpstat.us", "path": "/200", "method": "HEAD", "source_address": CURL_POD}, 1),
    ]
    assert log.absent == []


def test_state_4_gateway_policy_logs_httpbin_only():
    scenario = by_name()["gateway-policy"]
    gateway_setup(scenario)
    assert [egress_patch(p) for p in of(scenario, PatchStep)] == [False]
    assert manifests(scenario) == [GLOBAL_EGRESS_GATEWAY, EGRESS_HTTPBIN_80]
    (request,) = of(scenario, RequestStep)
    assert request.urls == ARTICLE_URLS and statuses(request) == [200, 403]
    assert request.responses[1].headers == {"content-length": "13", "connection": "keep-alive"}
    (log,) = of(scenario, GatewayLogStep)
    assert [r.fields["host"] for r in log.present] == ["httpbin.org"]
    assert [r.fields for r in log.absent] == [{"host": "httpstat.us"}]
