"""Egress ``spec.matches`` -> SMI HTTPRouteGroup: validation, compilation and the sidecar's decision."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.api.proxyconfig import Identity, Mode, Protocol, ProxyConfig, RequestMatch, Rule
from mesh.api.resources import Egress, EgressMatch, HTTPMatch, HTTPRouteGroup
from mesh.api.validation import validate_object
from mesh.controller.reconciler import Reconciler, compile_config
from mesh.proxy.match import HttpRequest, decide
from tests.article import httpbin_80, meshconfig

CURL = Identity("curl", "curl")
SMI = "specs.smi-spec.io/v1alpha4"


def route_group(name: str = "httpbin-get", namespace: str = "curl", *matches: dict[str, Any]) -> dict:
    return {
        "apiVersion": SMI,
        "kind": "HTTPRouteGroup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"matches": list(matches or [{"name": "get", "pathRegex": "/get", "methods": ["GET"]}])},
    }


def egress_with_matches(*groups: str, ports=((80, "http"),)) -> dict:
    obj = httpbin_80()
    obj["spec"]["ports"] = [{"number": p, "protocol": proto} for p, proto in ports]
    obj["spec"]["matches"] = [{"apiGroup": SMI, "kind": "HTTPRouteGroup", "name": g} for g in groups]
    return obj


# --- API: types and validation -----------------------------------------------------------------


def test_types_parse_references_and_entries():
    egress = Egress.from_object(egress_with_matches("httpbin-get"))
    assert egress.matches == (EgressMatch(SMI, "HTTPRouteGroup", "httpbin-get"),)
    assert egress.matches[0].is_http_route_group
    group = HTTPRouteGroup.from_object(
        route_group(
            "g", "curl", {"name": "m", "pathRegex": "/a", "methods": ["GET"], "headers": {"X-A": "1"}}
        )
    )
    assert group.matches == (HTTPMatch("m", "/a", ("GET",), (("X-A", "1"),)),)


def test_valid_route_group_has_no_problems():
    assert validate_object(route_group()) == []
    assert validate_object(route_group("g", "curl", {"name": "any", "methods": ["*"]})) == []


@pytest.mark.parametrize(
    "match, field, words",
    [
        ({"name": "a", "pathRegex": "/get("}, "spec.matches[0].pathRegex", "valid regular expression"),
        ({"name": "a", "methods": ["FETCH"]}, "spec.matches[0].methods[0]", "one of GET"),
        ({"name": "a", "methods": ["get"]}, "spec.matches[0].methods[0]", "'*' or one of"),
        ({"name": "a", "headers": {"x-a": "["}}, "spec.matches[0].headers.x-a", "valid regular expression"),
        ({"name": "a", "headers": {"bad name": "x"}}, "spec.matches[0].headers", "HTTP header names"),
        ({"name": "a", "pathRegex": 3}, "spec.matches[0].pathRegex", "must be a string"),
        ({"name": "a", "path": "/get"}, "spec.matches[0].path", "not a known field"),
    ],
)
def test_route_group_problems_name_object_field_and_rule(match, field, words):
    problems = validate_object(route_group("g", "curl", match))
    assert [(p.object, p.field) for p in problems] == [("HTTPRouteGroup curl/g", field)], problems
    assert words in problems[0].message


def test_route_group_at_an_unserved_version_is_refused():
    obj = route_group()
    obj["apiVersion"] = "specs.smi-spec.io/v1alpha3"
    (problem,) = validate_object(obj)
    assert problem.field == "apiVersion" and "use specs.smi-spec.io/v1alpha4" in problem.message


def test_egress_match_must_reference_a_known_kind():
    obj = egress_with_matches("g")
    obj["spec"]["matches"][0]["kind"] = "TCPRoute"
    (problem,) = validate_object(obj)
    assert (problem.object, problem.field) == ("Egress curl/httpbin-80", "spec.matches[0]")
    assert "HTTPRouteGroup" in problem.message and "TCPRoute" in problem.message


# --- controller: compilation -------------------------------------------------------------------


def compile_objects(*objects: dict) -> tuple[ProxyConfig, tuple[str, ...]]:
    snapshot = Reconciler().admit([meshconfig(False), *objects])
    return compile_config(snapshot, CURL), snapshot.errors


def test_referenced_group_is_compiled_into_the_http_rule():
    cfg, errors = compile_objects(
        egress_with_matches("httpbin-get"),
        route_group(
            "httpbin-get",
            "curl",
            {"name": "get", "pathRegex": "/get", "methods": ["GET"]},
            {"name": "ua", "headers": {"User-Agent": "curl/.*"}, "methods": ["*", "GET"]},
        ),
    )
    assert errors == ()
    (rule,) = cfg.rules
    assert rule.restricted
    assert rule.matches == (
        RequestMatch("/get", ("GET",)),
        RequestMatch(None, (), (("user-agent", "curl/.*"),)),
    )


def test_egress_without_matches_is_unrestricted():
    cfg, _ = compile_objects(httpbin_80(), route_group())
    assert not cfg.rules[0].restricted and cfg.rules[0].matches == ()


def test_missing_group_allows_nothing_and_reports_an_error():
    cfg, errors = compile_objects(egress_with_matches("httpbin-get"))
    (rule,) = cfg.rules
    assert rule.restricted and rule.matches == ()
    assert errors == (
        "Egress curl/httpbin-80: spec.matches[0]: HTTPRouteGroup curl/httpbin-get does not exist; "
        "until it does it allows no HTTP request (fail closed)",
    )


def test_group_in_another_namespace_does_not_count():
    cfg, errors = compile_objects(egress_with_matches("httpbin-get"), route_group("httpbin-get", "default"))
    assert cfg.rules[0].matches == () and len(errors) == 1


def test_existing_groups_are_merged_and_missing_ones_add_nothing():
    cfg, errors = compile_objects(
        egress_with_matches("httpbin-get", "gone", "httpbin-post"),
        route_group(),
        route_group("httpbin-post", "curl", {"name": "post", "pathRegex": "/post", "methods": ["POST"]}),
    )
    assert cfg.rules[0].matches == (RequestMatch("/get", ("GET",)), RequestMatch("/post", ("POST",)))
    assert len(errors) == 1 and "curl/gone" in errors[0]


def test_matches_only_restrict_http_ports():
    cfg, _ = compile_objects(egress_with_matches("httpbin-get", ports=((80, "http"), (443, "https"))))
    by_port = {r.port: r for r in cfg.rules}
    assert by_port[80].restricted and not by_port[443].restricted and by_port[443].matches == ()


def test_creating_the_group_changes_the_config_version():
    without, _ = compile_objects(egress_with_matches("httpbin-get"))
    with_group, _ = compile_objects(egress_with_matches("httpbin-get"), route_group())
    edited, _ = compile_objects(
        egress_with_matches("httpbin-get"),
        route_group("httpbin-get", "curl", {"name": "x", "pathRegex": "/x"}),
    )
    assert len({without.version, with_group.version, edited.version}) == 3
    assert ProxyConfig.from_json(with_group.to_json()) == with_group


# --- sidecar: the decision ---------------------------------------------------------------------


def policy(*rules: Rule, mode: Mode = Mode.POLICY) -> ProxyConfig:
    return ProxyConfig(identity=CURL, mode=mode, rules=rules).with_version()


GET_ONLY = Rule(
    Protocol.HTTP,
    80,
    hosts=("httpbin.org",),
    egress="curl/httpbin-80",
    matches=(RequestMatch("/get", ("GET",)), RequestMatch("/anything/.*", (), (("x-team", "a|b"),))),
    restricted=True,
)


@pytest.mark.parametrize(
    "method, target, headers, allowed",
    [
        ("GET", "/get", (), True),
        ("GET", "/get?show_env=1", (), True),
        ("GET", "http://httpbin.org/get", (), True),
        ("HEAD", "/get", (), False),
        ("GET", "/headers", (), False),
        ("GET", "/get/more", (), False),  # the regex must match the whole path
        ("GET", "/x/get", (), False),
        ("POST", "/anything/1", (("X-Team", "a"),), True),  # header names are case-insensitive
        ("POST", "/anything/1", (("x-team", "ab"),), False),  # the whole value must match
        ("POST", "/anything/1", (), False),
        ("DELETE", "/anything/", (("x-team", "c"), ("x-team", "b")), True),
    ],
)
def test_decision_table(method, target, headers, allowed):
    decision = decide(
        policy(GET_ONLY), Protocol.HTTP, 80, "10.0.0.1", "httpbin.org", HttpRequest(method, target, headers)
    )
    assert decision.allowed is allowed, decision.reason
    if not allowed:
        assert "curl/httpbin-80" in decision.reason and method in decision.reason


def test_restricted_rule_without_matches_denies_every_request():
    rule = Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80", restricted=True)
    decision = decide(policy(rule), Protocol.HTTP, 80, "10.0.0.1", "httpbin.org", HttpRequest("GET", "/get"))
    assert not decision.allowed


def test_another_unrestricted_rule_for_the_host_still_allows():
    open_rule = Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/open")
    decision = decide(
        policy(GET_ONLY, open_rule),
        Protocol.HTTP,
        80,
        "10.0.0.1",
        "httpbin.org",
        HttpRequest("GET", "/headers"),
    )
    assert decision.allowed and decision.egress == "curl/open"


def test_matches_do_not_apply_without_a_request_or_in_permissive_mode():
    assert decide(policy(GET_ONLY), Protocol.HTTP, 80, "10.0.0.1", "httpbin.org").allowed
    permissive = policy(GET_ONLY, mode=Mode.PERMISSIVE)
    assert decide(
        permissive, Protocol.HTTP, 80, "10.0.0.1", "httpbin.org", HttpRequest("GET", "/headers")
    ).allowed


def test_cidr_rules_are_restricted_too():
    rule = Rule(
        Protocol.HTTP,
        80,
        cidrs=("10.0.0.0/8",),
        egress="curl/ips",
        matches=(RequestMatch("/get"),),
        restricted=True,
    )
    assert decide(policy(rule), Protocol.HTTP, 80, "10.0.0.1", None, HttpRequest("GET", "/get")).allowed
    assert not decide(policy(rule), Protocol.HTTP, 80, "10.0.0.1", None, HttpRequest("GET", "/ip")).allowed
