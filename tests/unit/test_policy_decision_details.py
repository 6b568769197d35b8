"""The policy decision in detail: every CIDR of a rule, the reason each decision logs, the gateway a
permissive decision carries, and host/port parsing at its limits (issue 14, items 6 and 10)."""

from __future__ import annotations

import pytest

from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, RequestMatch, Rule
from mesh.proxy.match import BadHost, HttpRequest, decide, needs_request, normalise_host, split_host_port

GW = Endpoint("gw.example", 1080)


def cfg(mode: Mode, *rules: Rule, gateway: Endpoint | None = None) -> ProxyConfig:
    return ProxyConfig(Identity("curl", "curl"), mode, rules=rules, gateway=gateway)


@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.HTTP, Protocol.HTTPS])
@pytest.mark.parametrize("ip", ["10.1.2.3", "192.168.7.8", "2001:db8::5"])
def test_a_rule_with_several_cidrs_allows_each_of_them(protocol, ip):
    """Item 6: the address must be in any one of the rule's CIDRs, not in all of them."""
    rule = Rule(protocol, 5432, cidrs=("10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"), egress="db/net")
    decision = decide(cfg(Mode.POLICY, rule), protocol, 5432, ip, None)
    assert (decision.allowed, decision.target, decision.reason, decision.egress) == (
        True,
        ip,
        f"address {ip} allowed",
        "db/net",
    )
    assert not decide(cfg(Mode.POLICY, rule), protocol, 5432, "172.16.0.1", None).allowed


@pytest.mark.parametrize(
    "config, protocol, name, reason",
    [
        (cfg(Mode.DISABLED), Protocol.HTTP, "a.test", "egress disabled"),
        (cfg(Mode.POLICY), Protocol.HTTP, "a.test", "no rule allows http host a.test on port 80"),
        (cfg(Mode.POLICY), Protocol.HTTPS, None, "no SNI and no rule allows address 10.0.0.9 on port 80"),
        (cfg(Mode.POLICY), Protocol.TCP, None, "no rule allows tcp to 10.0.0.9 on port 80"),
        (cfg(Mode.POLICY), Protocol.HTTP, None, "no rule allows http to 10.0.0.9 on port 80"),
        (cfg(Mode.PERMISSIVE), Protocol.HTTP, "a.test", "permissive"),
        (
            cfg(Mode.POLICY, Rule(Protocol.HTTP, 80, hosts=("a.test",))),
            Protocol.HTTP,
            "a.test",
            "host a.test allowed",
        ),
    ],
)
def test_each_decision_says_why(config, protocol, name, reason):
    assert decide(config, protocol, 80, "10.0.0.9", name).reason == reason


def test_a_permissive_decision_goes_to_the_gateway_by_name():
    decision = decide(cfg(Mode.PERMISSIVE, gateway=GW), Protocol.HTTP, 80, "10.0.0.9", "a.test")
    assert (decision.allowed, decision.target, decision.gateway) == (True, "a.test", GW)
    decision = decide(cfg(Mode.PERMISSIVE), Protocol.HTTP, 80, "10.0.0.9", "a.test")
    assert (decision.target, decision.gateway) == ("10.0.0.9", None)


def test_a_request_no_match_allows_is_denied_naming_the_egress_and_the_request():
    get_only = Rule(
        Protocol.HTTP,
        80,
        hosts=("a.test",),
        cidrs=("10.0.0.0/8",),
        egress="curl/a",
        matches=(RequestMatch("/get", ("GET",)),),
        restricted=True,
    )
    request = HttpRequest("POST", "/post?x=1")
    decision = decide(cfg(Mode.POLICY, get_only), Protocol.HTTP, 80, "10.0.0.9", "a.test", request)
    assert (decision.allowed, decision.reason) == (
        False,
        "no HTTPRouteGroup match of Egress curl/a allows POST /post",
    )
    decision = decide(cfg(Mode.POLICY, get_only), Protocol.HTTP, 80, "10.0.0.9", None, request)
    assert decision.reason == "no HTTPRouteGroup match of Egress curl/a allows POST /post"


def test_a_match_listing_the_wildcard_method_allows_every_method():
    rule = Rule(
        Protocol.HTTP, 80, hosts=("a.test",), matches=(RequestMatch("/x", ("GET", "*")),), restricted=True
    )
    assert decide(
        cfg(Mode.POLICY, rule), Protocol.HTTP, 80, "10.0.0.9", "a.test", HttpRequest("PATCH", "/x")
    ).allowed


# ---------------------------------------------------------------- hosts and ports at their limits (item 10)


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("a.test:1", ("a.test", 1)),
        ("a.test:65535", ("a.test", 65535)),
        ("[::1]:65535", ("::1", 65535)),
        ("[2001:DB8::1]", ("2001:db8::1", None)),
    ],
)
def test_ports_from_1_to_65535(text, parsed):
    assert split_host_port(text) == parsed


@pytest.mark.parametrize(
    "text, message",
    [
        ("a.test:0", "bad port in 'a.test:0'"),
        ("a.test:65536", "bad port in 'a.test:65536'"),
        ("[::1]:65536", "bad port in '[::1]:65536'"),
        ("[::1]:x", "bad port in '[::1]:x'"),
        ("[::1", "unterminated IPv6 literal in '[::1'"),
        ("[::1]]", "garbage after IPv6 literal in '[::1]]'"),
        ("[::1]x", "garbage after IPv6 literal in '[::1]x'"),
        ("[a.test]", "bad IPv6 literal in '[a.test]'"),
        ("a_b!.test", "not a valid host name: 'a_b!.test'"),
    ],
)
def test_bad_hosts_and_ports_say_what_is_wrong(text, message):
    with pytest.raises(BadHost) as refused:
        split_host_port(text)
    assert str(refused.value) == message


def name_of(length: int) -> str:
    labels = ["a" * 62] * ((length - 1) // 63)
    return ".".join([*labels, "b" * (length - 63 * len(labels))])


def test_host_names_are_at_most_253_characters():
    assert normalise_host(name_of(253)) == name_of(253)
    assert normalise_host(name_of(253) + ".") == name_of(253)
    with pytest.raises(BadHost):
        normalise_host(name_of(254))


def test_bracketed_addresses_are_normalised():
    assert normalise_host("[2001:DB8::1]") == "2001:db8::1"
    assert normalise_host("[10.0.0.1]") == "10.0.0.1"


@pytest.mark.parametrize(
    "text, parsed",
    [(" \tA.test:80 \t", ("a.test", 80)), ("Xa.test", ("xa.test", None)), ("a.testX", ("a.testx", None))],
)
def test_only_blanks_and_tabs_are_stripped_around_a_host(text, parsed):
    assert split_host_port(text) == parsed
    assert normalise_host(text.split(":")[0]) == parsed[0]


@pytest.mark.parametrize("space", ["\xa0", "\x85", "\u3000", "\n", "\x0b"])
def test_a_host_ending_in_another_space_is_not_a_host(space):
    """0xA0 and 0x85 are Unicode spaces once a head is decoded as latin-1: stripping them would decide
    on a name the server is not sent (issue 14)."""
    with pytest.raises(BadHost, match="not a valid host name"):
        split_host_port("a.test" + space)
    with pytest.raises(BadHost, match="not a valid host name"):
        normalise_host(space + "a.test")


GET_ROOT = HttpRequest("GET", "/")


@pytest.mark.parametrize(
    "rule",
    [
        Rule(
            Protocol.HTTP, 80, hosts=("a.test",), restricted=True, egress="ns/none"
        ),  # its groups are missing
        Rule(
            Protocol.HTTP, 80, hosts=("a.test",), matches=(RequestMatch(path_regex="/x"),), egress="ns/none"
        ),
    ],
)
def test_a_rule_that_looks_at_requests_is_asked_about_each_one(rule):
    config = cfg(Mode.POLICY, rule)
    assert needs_request(config, 80) and needs_request(config, 80)  # (the second answer is cached)
    assert not needs_request(config, 81)
    decision = decide(config, Protocol.HTTP, 80, "10.0.0.9", "a.test", GET_ROOT)
    assert (decision.allowed, decision.reason) == (
        False,
        "no HTTPRouteGroup match of Egress ns/none allows GET /",
    )


def test_rules_that_look_only_at_hosts_do_not_need_the_request():
    config = cfg(
        Mode.POLICY, Rule(Protocol.HTTP, 80, hosts=("a.test",)), Rule(Protocol.TCP, 80, restricted=True)
    )
    assert not needs_request(config, 80) and not needs_request(config, 80)


def test_a_request_no_rule_names_is_refused_for_its_host_not_for_its_path():
    config = cfg(Mode.POLICY, Rule(Protocol.HTTP, 80, hosts=("a.test",), restricted=True))
    decision = decide(config, Protocol.HTTP, 80, "10.0.0.9", "b.test", GET_ROOT)
    assert (decision.allowed, decision.reason) == (False, "no rule allows http host b.test on port 80")
